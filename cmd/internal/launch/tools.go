package launch

import (
	"context"
	"errors"
	"flag"
	"io"

	"github.com/spillway/spillway/shared/mastodonenv"
)

// toolFlags are the flags that make a command do one short task and exit
// instead of serving: print its version, check its configuration, or probe
// the server already running with that configuration.
type toolFlags struct {
	version, checkConfig, healthcheck *bool
}

// addToolFlags registers -version, -check-config and -healthcheck on fs.
func addToolFlags(fs *flag.FlagSet) toolFlags {
	return toolFlags{
		version:     fs.Bool("version", false, "print the version (module version, VCS revision) and exit"),
		checkConfig: fs.Bool("check-config", false, "print the effective configuration (secrets masked), try every dependency and listen address, and exit non-zero on any problem"),
		healthcheck: fs.Bool("healthcheck", false, "probe the server running with this configuration and exit non-zero unless it is healthy (edge: GET /api/v1/streaming/health; broker: its NATS listener); for container health checks"),
	}
}

// toolTarget is the command a tool flag acts for, as the command's own
// flags describe it.
type toolTarget struct {
	name          string          // "edge" or "broker"
	env           mastodonenv.Env // the process environment, before the .env file
	root          string          // -mastodon-root
	allInOne      bool            // edge -all-in-one
	metricsListen string          // broker -metrics-listen
}

// run performs the task selected by the flags; ran is false when none was,
// and the command should serve as usual.
func (f toolFlags) run(ctx context.Context, t toolTarget, stdout io.Writer) (ran bool, err error) {
	n := 0
	for _, b := range []*bool{f.version, f.checkConfig, f.healthcheck} {
		if *b {
			n++
		}
	}
	switch {
	case n == 0:
		return false, nil
	case n > 1:
		return true, errors.New("-version, -check-config and -healthcheck exclude each other")
	case *f.version:
		_, err := io.WriteString(stdout, versionLine(t.name)+"\n")
		return true, err
	case *f.checkConfig:
		return true, checkConfig(ctx, t, stdout)
	default:
		return true, healthcheck(ctx, t, stdout)
	}
}
