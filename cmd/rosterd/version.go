package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Version is set at build time with -ldflags "-X main.Version=v1.2.3";
// otherwise the module's build information says what was built.
var Version = ""

// buildVersion is what a binary knows of its own build.
type buildVersion struct {
	Version   string // the release, a pseudo-version, "devel-REVISION" or "devel"
	Revision  string // the VCS commit, "" when the build had no VCS information
	Time      string // the commit's time, RFC 3339
	Modified  bool   // the work tree had changes not committed
	GoVersion string
}

// readBuildVersion reads the version from -ldflags (ld), else from the
// module's build information: `go install ...@v1.2.3` records the module
// version; `go build` in a clone records the VCS revision, its time and
// whether the tree was modified (and, since Go 1.24, a pseudo-version made
// from them); `go run` and -buildvcs=false record neither: "devel".
func readBuildVersion(ld string, bi *debug.BuildInfo) buildVersion {
	v := buildVersion{Version: ld, GoVersion: runtime.Version()}
	if bi == nil {
		if v.Version == "" {
			v.Version = "devel"
		}
		return v
	}
	if bi.GoVersion != "" {
		v.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	switch {
	case v.Version != "":
	case bi.Main.Version != "" && bi.Main.Version != "(devel)":
		v.Version = bi.Main.Version
	case v.Revision != "":
		v.Version = "devel-" + v.Revision[:min(12, len(v.Revision))]
		if v.Modified {
			v.Version += "+dirty"
		}
	default:
		v.Version = "devel"
	}
	return v
}

// version is the one-word version for logs and the status API.
func version() string {
	bi, _ := debug.ReadBuildInfo()
	return readBuildVersion(Version, bi).Version
}

// write prints the version as `rosterd version` does.
func (v buildVersion) write(w io.Writer) {
	fmt.Fprintf(w, "rosterd %s\n", v.Version)
	switch {
	case v.Revision != "":
		fmt.Fprintf(w, "commit  %s", v.Revision)
		if v.Time != "" {
			fmt.Fprintf(w, " (%s)", v.Time)
		}
		if v.Modified {
			fmt.Fprintf(w, ", with changes not committed")
		}
		fmt.Fprintln(w)
	default:
		fmt.Fprintf(w, "commit  unknown: built without version control information (go run, or -buildvcs=false)\n")
	}
	fmt.Fprintf(w, "go      %s %s/%s\n", v.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// versionCommand is `rosterd version`.
func versionCommand() *command {
	return &command{
		name: "version", summary: "print the version, the commit it was built from and the Go version",
		about: "Print the version of this binary, the commit it was built from (its time,\n" +
			"and whether the work tree had changes not committed), and the Go version\n" +
			"and platform. A build with \"go build\" in a clone of the repository records\n" +
			"the commit; \"go run\" and -buildvcs=false do not, and print devel.",
		example: "rosterd version\nrosterd --version",
		setup: func(fs *flag.FlagSet) action {
			fs.String("data", "", "a data `DIR`, accepted like every command's; version reads nothing")
			return func(ctx context.Context, std stdio, args []string) error {
				bi, _ := debug.ReadBuildInfo()
				readBuildVersion(Version, bi).write(std.out)
				return nil
			}
		},
	}
}
