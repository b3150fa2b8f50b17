package launch

import (
	"runtime/debug"
	"strings"
)

// versionLine describes this binary from the build information the Go
// toolchain embeds: `go install module@version` records the module version,
// and `go build` in a clone records the VCS revision, whether the tree had
// uncommitted changes, and the commit time (Go 1.24 and later also derive a
// pseudo-version from them). Nothing has to be stamped by hand.
func versionLine(name string) string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(name, bi)
}

// formatVersion renders bi (nil when the binary carries none) as one line:
//
//	spillway-edge v0.0.0-20251202151200-53e5b9f7d34c+dirty (revision 53e5b9f7d34c…, committed 2025-12-02T15:12:00Z, modified; go1.26.8 linux/amd64)
func formatVersion(name string, bi *debug.BuildInfo) string {
	var b strings.Builder
	b.WriteString("spillway-" + name + " ")
	if bi == nil {
		b.WriteString("(no build information)")
		return b.String()
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	b.WriteString(version)
	var details []string
	var goos, goarch string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			details = append(details, "revision "+s.Value)
		case "vcs.modified":
			if s.Value == "true" {
				details = append(details, "modified")
			}
		case "vcs.time":
			details = append(details, "committed "+s.Value)
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if len(details) == 0 && version == "(devel)" {
		details = append(details, "no VCS information: build from a git clone with -buildvcs=true")
	}
	toolchain := bi.GoVersion
	if goos != "" {
		toolchain += " " + goos + "/" + goarch
	}
	b.WriteString(" (")
	if len(details) > 0 {
		b.WriteString(strings.Join(details, ", ") + "; ")
	}
	b.WriteString(strings.TrimSpace(toolchain) + ")")
	return b.String()
}
