package bot

import "github.com/rs/zerolog"

// Logger and Options let a test start another daemon like this one (a
// restart).
func (d *Daemon) Logger() zerolog.Logger { return d.log }

func (d *Daemon) Options() Options { return d.opts }
