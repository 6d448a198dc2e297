// Command securechat finds secrets posted to Slack, records them and deletes
// the messages. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/securechat/securechat/cli"
)

func main() {
	// The first SIGINT/SIGTERM cancels ctx: commands stop taking work and
	// finish what is in flight. A second one exits at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		<-again
		os.Stderr.WriteString("securechat: second signal, exiting now\n")
		os.Exit(cli.ExitInterrupted)
	}()
	os.Exit(cli.Run(ctx, os.Args[1:], cli.OSDeps()))
}
