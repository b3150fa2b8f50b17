package mastodonenv

import "log/slog"

// slog levels for pino's two levels that slog lacks. Mastodon's numbers are
// 10 apart (trace 10 … fatal 60), slog's 4 apart, so trace and fatal sit
// one step beyond debug and error respectively.
const (
	LevelTrace = slog.LevelDebug - 4
	LevelFatal = slog.LevelError + 4
)

// pinoLevels maps the level names pino accepts for LOG_LEVEL.
var pinoLevels = map[string]slog.Level{
	"fatal": LevelFatal,
	"error": slog.LevelError,
	"warn":  slog.LevelWarn,
	"info":  slog.LevelInfo,
	"debug": slog.LevelDebug,
	"trace": LevelTrace,
}

// LogLevelFromEnv reads LOG_LEVEL like streaming/logging.js: one of fatal,
// error, warn, info, debug, trace (exact, lower case); anything else,
// including "silent", falls back to debug when NODE_ENV is development (or
// unset) and info otherwise.
func LogLevelFromEnv(env Env) slog.Level {
	if l, ok := pinoLevels[env.Get("LOG_LEVEL")]; ok {
		return l
	}
	if NodeEnv(env) == Development {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// LevelName returns pino's name for l ("info", "trace", ...), rounding a
// level between two names down to the lower one, so log output can carry
// the same level labels as Mastodon's.
func LevelName(l slog.Level) string {
	switch {
	case l >= LevelFatal:
		return "fatal"
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	case l >= slog.LevelDebug:
		return "debug"
	default:
		return "trace"
	}
}
