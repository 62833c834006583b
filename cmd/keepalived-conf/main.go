// Command keepalived-conf renders keepalived.conf for one control-plane node,
// for the keepalived static pod (README, "Deploying the static pods"):
//
//	keepalived-conf -interface eth0 -vips 198.18.0.100 -priority 100 -auth-pass s3cret > keepalived.conf
//
// The template is templates/keepalived.conf.tmpl, built in; -template reads
// another file instead.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
	"github.com/haproxy-monitor/haproxy-monitor/templates"
)

const usage = `usage: keepalived-conf -interface IFACE -vips VIP[,VIP] -auth-pass PASS [-priority N] [-vrid N] [-health-url URL]
                       [-track-file PATH] [-advert-int SECONDS] [-template FILE]

Renders keepalived.conf for one control-plane node to standard output. Give
every node the same -vips, -vrid and -auth-pass and a different -priority.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keepalived-conf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	c := keepalived.Config{}
	tmpl := fs.String("template", "", "template file (default: the built-in templates/keepalived.conf.tmpl)")
	vips := c.Flags(fs)
	fs.StringVar(&c.HealthURL, "health-url", keepalived.DefaultHealthURL, "haproxy monitor-uri for the track script")
	fs.StringVar(&c.TrackFile, "track-file", "", "the file haproxy-monitor writes (--keepalived-track-file), read with weight -1: -253 raises the priority to 254, 253 drops it to 1, 254 is FAULT at once")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keepalived-conf: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if err := vips(); err != nil {
		fmt.Fprintln(stderr, "keepalived-conf:", err)
		fs.Usage()
		return 2
	}
	text := templates.KeepalivedConf
	if *tmpl != "" {
		b, err := os.ReadFile(*tmpl)
		if err != nil {
			fmt.Fprintln(stderr, "keepalived-conf:", err)
			return 1
		}
		text = string(b)
	}
	out, err := keepalived.RenderText(text, c)
	if err != nil {
		fmt.Fprintln(stderr, "keepalived-conf:", err)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}
