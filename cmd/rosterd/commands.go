package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// command is one command or subcommand of rosterd: its help text, its
// flags and what it does. rootCommand's tree is the one source of the
// usage lines, the help texts and the dispatch, so that every command
// answers -h the same way.
type command struct {
	name    string // the words after "rosterd": "org add"
	args    string // the positional arguments in the usage line: "ORG FILE|-"
	summary string // one line for the lists of commands
	about   string // what it does, for -h
	example string // example lines, for -h

	// minArgs and maxArgs bound the positional arguments; maxArgs < 0
	// means any number.
	minArgs, maxArgs int
	// setup registers the command's flags on fs and returns what runs
	// with the positional arguments. nil for a group of subcommands.
	setup func(fs *flag.FlagSet) action
	subs  []*command
}

// action runs a command with its positional arguments; its flags are
// parsed already.
type action func(ctx context.Context, std stdio, args []string) error

// stdio are a command's standard input, output and error.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// commonFlags may come before the command as well as after it:
// `rosterd --data DIR org list` is `rosterd org list --data DIR`. Each
// goes to the command only if the command takes it.
var commonFlags = []string{"data", "http-addr", "config", "log-format"}

// rootCommand returns the tree of commands.
func rootCommand() *command {
	root := &command{
		summary: "the SFTP directory-sync daemon and its command-line client",
		about: "rosterd receives CSV exports of people and groups over SFTP, checks them, and\n" +
			"sends the changes as events to a recipient store and to webhooks. `serve`\n" +
			"runs the daemon; the client commands (plan, org, key, batch, status) talk\n" +
			"to the running daemon over its HTTP API, found through the data directory.",
		example: "rosterd serve --demo\n" +
			"rosterd --data /var/lib/rosterd org list\n" +
			"rosterd validate users.csv user_groups.csv\n" +
			"rosterd help org set",
	}
	root.subs = []*command{
		serveCommand(), validateCommand(), planCommand(),
		orgCommand(), keyCommand(), batchCommand(),
		statusCommand(), migrateCommand(), storeCommand(), versionCommand(), helpCommand(root),
	}
	return root
}

// sub returns c's subcommand called name, or nil.
func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == strings.TrimSpace(c.name+" "+name) {
			return s
		}
	}
	return nil
}

// leafName is the last word of c's name.
func (c *command) leafName() string {
	return c.name[strings.LastIndex(c.name, " ")+1:]
}

// usageLine is the one-line usage of c.
func (c *command) usageLine() string {
	switch {
	case c.name == "":
		return "usage: rosterd [--data DIR] COMMAND [flags] [arguments]"
	case c.setup == nil:
		return "usage: rosterd " + c.name + " COMMAND [flags] [arguments]"
	}
	s := "usage: rosterd " + c.name
	if c.args != "" {
		s += " " + c.args
	}
	return s + " [flags]"
}

// writeHelp writes c's full help: usage, what it does, its flags or
// subcommands, examples.
func (c *command) writeHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\n", c.usageLine())
	about := c.about
	if about == "" {
		about = capitalize(c.summary) + "."
	}
	fmt.Fprintf(w, "%s\n", about)
	if len(c.subs) > 0 {
		fmt.Fprintf(w, "\nCommands:\n")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, s := range c.subs {
			fmt.Fprintf(tw, "  %s %s\t%s\n", s.leafName(), s.args, s.summary)
		}
		tw.Flush()
	}
	if fs != nil {
		writeFlags(w, fs)
	}
	if c.example != "" {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, l := range strings.Split(c.example, "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	switch {
	case c.name == "":
		fmt.Fprintf(w, "\nRun \"rosterd COMMAND -h\" for a command's flags and examples.\n"+
			"The flags --data, --http-addr, --config and --log-format may also come before\n"+
			"the command. Exit status: 0 success, 1 failure, 2 usage error or no daemon.\n")
	case len(c.subs) > 0:
		fmt.Fprintf(w, "\nRun \"rosterd %s COMMAND -h\" for a command's flags and examples.\n", c.name)
	}
}

// writeFlags lists fs's flags as "--name VALUE" with their help and
// default.
func writeFlags(w io.Writer, fs *flag.FlagSet) {
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		s := "  --" + f.Name
		if name != "" {
			s += " " + name
		}
		s += "\n      " + strings.ReplaceAll(usage, "\n", "\n      ")
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			s += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		lines = append(lines, s)
	})
	if len(lines) == 0 {
		return
	}
	sort.Strings(lines)
	fmt.Fprintf(w, "\nFlags:\n%s\n", strings.Join(lines, "\n"))
}

// usageFail prints a command-line mistake with c's usage line to stderr
// and returns exit code 2.
func (c *command) usageFail(stderr io.Writer, format string, args ...any) error {
	name := strings.TrimSpace("rosterd " + c.name)
	fmt.Fprintf(stderr, "%s: %s\n%s\n", name, fmt.Sprintf(format, args...), c.usageLine())
	fmt.Fprintf(stderr, "Run \"%s -h\" for help.\n", name)
	return &ExitCodeError{Code: 2}
}

// run is the whole program: main only maps its error to an exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	std := stdio{in: stdin, out: stdout, err: stderr}
	root := rootCommand()
	gfs := flag.NewFlagSet("rosterd", flag.ContinueOnError)
	gfs.SetOutput(io.Discard)
	for _, name := range commonFlags {
		gfs.String(name, "", "")
	}
	showVersion := gfs.Bool("version", false, "")
	gfs.BoolVar(showVersion, "v", false, "")
	if err := gfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			root.writeHelp(stdout, nil)
			return nil
		}
		return root.usageFail(stderr, "%s", flagMessage(err))
	}
	if *showVersion {
		return runCommand(ctx, root.sub("version"), nil, nil, std)
	}
	var common []string
	gfs.Visit(func(f *flag.Flag) {
		if f.Name != "version" && f.Name != "v" {
			common = append(common, "--"+f.Name+"="+f.Value.String())
		}
	})
	rest := gfs.Args()
	if len(rest) == 0 {
		root.writeHelp(stderr, nil)
		return &ExitCodeError{Code: 2, Err: errors.New("no command given")}
	}
	return runCommand(ctx, root, rest, common, std)
}

// runCommand finds the subcommand args name under c and runs it, or runs
// c itself when it has no subcommands. common are flags given before the
// command.
func runCommand(ctx context.Context, c *command, args, common []string, std stdio) error {
	for len(c.subs) > 0 {
		if len(args) == 0 {
			c.writeHelp(std.err, nil)
			return &ExitCodeError{Code: 2, Err: fmt.Errorf("%s: which command? one of %s", c.name, c.subNames())}
		}
		switch args[0] {
		case "-h", "-help", "--help":
			c.writeHelp(std.out, nil)
			return nil
		case "help":
			return runCommand(ctx, helpCommand(c), args[1:], nil, std)
		}
		s := c.sub(args[0])
		if s == nil {
			if strings.HasPrefix(args[0], "-") {
				return c.usageFail(std.err, "flags go after the command, as in \"rosterd %s list %s\"", c.name, args[0])
			}
			return c.usageFail(std.err, "unknown command %q: want one of %s", args[0], c.subNames())
		}
		c, args = s, args[1:]
	}
	fs := flag.NewFlagSet("rosterd "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	act := c.setup(fs)
	for _, f := range common {
		name, _, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if fs.Lookup(name) == nil {
			return c.usageFail(std.err, "--%s does not apply to this command", name)
		}
	}
	pos, err := parseArgs(fs, append(common[:len(common):len(common)], args...))
	if errors.Is(err, flag.ErrHelp) {
		c.writeHelp(std.out, fs)
		return nil
	}
	if err != nil {
		return c.usageFail(std.err, "%s", flagMessage(err))
	}
	switch {
	case len(pos) < c.minArgs:
		return c.usageFail(std.err, "missing arguments: want %s", c.args)
	case c.maxArgs == 0 && len(pos) > 0:
		return c.usageFail(std.err, "takes no arguments, got %q", pos)
	case c.maxArgs >= 0 && len(pos) > c.maxArgs:
		return c.usageFail(std.err, "too many arguments %q: want %s", pos, c.args)
	}
	err = act(ctx, std, pos)
	var ue *usageErr
	if errors.As(err, &ue) {
		return c.usageFail(std.err, "%s", ue.msg)
	}
	return err
}

// subNames lists c's subcommands: "add, list, remove".
func (c *command) subNames() string {
	names := make([]string, len(c.subs))
	for i, s := range c.subs {
		names[i] = s.leafName()
	}
	return strings.Join(names, ", ")
}

// helpCommand is `rosterd help [COMMAND [SUBCOMMAND]]`, and `rosterd
// GROUP help [COMMAND]` when root is a group.
func helpCommand(root *command) *command {
	return &command{
		name: strings.TrimSpace(root.name + " help"), args: "[COMMAND [SUBCOMMAND]]", summary: "show the help of rosterd or of a command",
		about:   "Print the help of rosterd, or of the named command: the same as \"rosterd COMMAND -h\".",
		example: "rosterd help org\nrosterd help org set",
		maxArgs: 2,
		setup: func(fs *flag.FlagSet) action {
			return func(ctx context.Context, std stdio, args []string) error {
				c := root
				for _, a := range args {
					s := c.sub(a)
					if s == nil {
						return usageError("no command %q", strings.TrimSpace(c.name+" "+a))
					}
					c = s
				}
				if c.setup == nil {
					c.writeHelp(std.out, nil)
					return nil
				}
				fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
				c.setup(fs)
				c.writeHelp(std.out, fs)
				return nil
			}
		},
	}
}

// parseArgs parses args with fs and returns the positional arguments,
// wherever they stood among the flags; "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// flagMessage words a flag parsing error with the flag as it is written
// in the help: "unknown flag --nope".
func flagMessage(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag --" + name
	}
	return msg
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
