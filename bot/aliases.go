package bot

import (
	"github.com/securechat/securechat/bot/catchup"
	"github.com/securechat/securechat/bot/message"
	"github.com/securechat/securechat/bot/metrics"
	"github.com/securechat/securechat/bot/notify"
	"github.com/securechat/securechat/bot/scan"
	"github.com/securechat/securechat/bot/slackapi"
)

// Metrics are the daemon's Prometheus metrics (package bot/metrics).
type Metrics = metrics.Metrics

// NewMetrics creates the metrics on a new registry.
func NewMetrics() *Metrics { return metrics.New() }

// TokenError is a token Slack refused (package bot/slackapi).
type TokenError = slackapi.TokenError

// ManifestUserScopes are the user token's scopes in the app manifest.
func ManifestUserScopes() []string { return slackapi.ManifestUserScopes() }

// Notify configures notifications (package bot/notify).
type Notify = notify.Config

// WebhookEvent is the JSON body POSTed to the webhook per leak.
type WebhookEvent = notify.WebhookEvent

// WebhookFinding is one match in a WebhookEvent.
type WebhookFinding = notify.WebhookFinding

// Scope limits what is scanned (package bot/message).
type Scope = message.Scope

// Breaker configures the runaway-rule breaker (package bot/scan).
type Breaker = scan.BreakerConfig

// Catchup configures the catch-up after downtime (package bot/catchup).
type Catchup = catchup.Config
