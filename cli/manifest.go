package cli

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/securechat/securechat/bot"
)

// userEvents are the message events securechat subscribes to on behalf of
// the installing user.
var userEvents = []string{"message.channels", "message.groups", "message.im", "message.mpim"}

func newManifestCmd(a *app) *cobra.Command {
	var asJSON bool
	var name string
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Print the Slack app manifest securechat needs",
		Long: `Print a Slack app manifest: Socket Mode on, the user token scopes and the four message
events securechat needs, a bot user (chat:write, im:write, commands) for the notices'
buttons, the /securechat command and the Home tab, interactivity on, and no public URL.

Create the app from it at https://api.slack.com/apps → Create New App → From a manifest,
then under Basic Information → App-Level Tokens create a token with connections:write
(that is SLACK_APP_TOKEN), and install the app as a workspace admin or owner (the User
OAuth Token is SLACK_USER_TOKEN, the Bot User OAuth Token SLACK_BOT_TOKEN). The admin sees, and so securechat scans, only the
conversations the admin is a member of.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Slack refuses a manifest whose display name is empty or longer
			// than 35 characters; say so here, not on Slack's page.
			if n := utf8.RuneCountInString(strings.TrimSpace(name)); n == 0 || n > 35 {
				return &usageError{cmd: cmd.CommandPath(), err: fmt.Errorf("--name %q: Slack takes an app name of 1 to 35 characters (this one has %d)", name, n)}
			}
			if asJSON {
				return writeJSON(a.Stdout, manifest(name))
			}
			y, err := manifestYAML(name)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(a.Stdout, y)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of YAML")
	cmd.Flags().StringVar(&name, "name", "securechat", "the app's display name")
	return cmd
}

// botScopes are the bot user's scopes: post notices and alerts with
// buttons (chat:write), open a DM with an author (im:write), and receive
// /securechat (commands).
var botScopes = []string{"chat:write", "im:write", "commands"}

// botEvents are the events the bot user receives: a member opening the
// app's Home tab.
var botEvents = []string{"app_home_opened"}

// slashUsage is the /securechat command's usage hint.
const slashUsage = "status | rules | pause ID | resume ID | allow LEAK_ID | help"

func manifest(name string) map[string]any {
	return map[string]any{
		"_metadata": map[string]any{"major_version": 1, "minor_version": 1},
		"display_information": map[string]any{
			"name":        name,
			"description": "Deletes messages that leak secrets (cards, keys, tokens) and records the leak.",
		},
		"features": map[string]any{
			"app_home": map[string]any{"home_tab_enabled": true, "messages_tab_enabled": false, "messages_tab_read_only_enabled": true},
			"bot_user": map[string]any{"display_name": name, "always_online": true},
			"slash_commands": []any{map[string]any{"command": "/securechat", "description": "securechat: status, rules, and admin actions",
				"usage_hint": slashUsage, "should_escape": false}},
		},
		"oauth_config": map[string]any{"scopes": map[string]any{"user": bot.ManifestUserScopes(), "bot": botScopes}},
		"settings": map[string]any{
			"event_subscriptions":    map[string]any{"user_events": userEvents, "bot_events": botEvents},
			"interactivity":          map[string]any{"is_enabled": true},
			"org_deploy_enabled":     false,
			"socket_mode_enabled":    true,
			"token_rotation_enabled": false,
		},
	}
}

// manifestYAML is manifest(name) as YAML, after a comment that says what to
// do with it: the same document as --json, written once.
func manifestYAML(name string) (string, error) {
	var b strings.Builder
	b.WriteString(`# Slack app manifest for securechat (https://api.slack.com/reference/manifests).
# After creating the app: Basic Information → App-Level Tokens → a token with
# connections:write (SLACK_APP_TOKEN); install it as a workspace admin or owner
# and copy the User OAuth Token (SLACK_USER_TOKEN) and the Bot User OAuth
# Token (SLACK_BOT_TOKEN: buttons, /securechat and the Home tab).
`)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(manifest(name)); err != nil {
		return "", fmt.Errorf("write the manifest as YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return "", fmt.Errorf("write the manifest as YAML: %w", err)
	}
	return b.String(), nil
}
