// Package chart draws the pictures of LAB.md and BENCHMARKS.md: a failure
// scenario's timeline (requests per 100 ms, succeeded and failed, with the
// scenario's events marked; ours above the original's setup when both ran)
// and the distribution of a latency, ours beside the original's.
package chart

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/haproxy-monitor/haproxy-monitor/test/load"
)

// Bucket is a timeline's resolution.
const Bucket = 100 // ms

var (
	green = color.RGBA{R: 0x2e, G: 0x8b, B: 0x57, A: 0xff}
	red   = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	grey  = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
)

// Event is a moment of a scenario: the kill, the redirect out, the VIP's
// move. At is in milliseconds from the load's start.
type Event struct {
	AtMS  float64
	Label string
}

// Panel is one load's timeline: its title, the load's per-request record
// and the events.
type Panel struct {
	Title    string
	Requests []load.Record
	Events   []Event
}

// Timeline writes a PNG of the panels, one above the other on one time
// axis.
func Timeline(path string, panels ...Panel) error {
	if len(panels) == 0 {
		return fmt.Errorf("timeline %s: no panel", path)
	}
	var end float64
	for _, p := range panels {
		if n := len(p.Requests); n > 0 {
			end = max(end, p.Requests[n-1].EndMS)
		}
	}
	plots := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		pl, err := timelinePlot(p, end)
		if err != nil {
			return err
		}
		plots[i] = []*plot.Plot{pl}
	}
	img := vgimg.New(8*vg.Inch, vg.Length(len(panels))*2.5*vg.Inch)
	dc := draw.New(img)
	canvases := plot.Align(plots, draw.Tiles{Rows: len(panels), Cols: 1, PadY: 2 * vg.Millimeter, PadTop: vg.Millimeter,
		PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: 3 * vg.Millimeter}, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	return save(path, img)
}

// Buckets counts succeeded and failed requests per Bucket ms, by when they
// ended, up to endMS.
func Buckets(recs []load.Record, endMS float64) (ok, failed []float64) {
	n := int(endMS/Bucket) + 1
	ok, failed = make([]float64, n), make([]float64, n)
	for _, r := range recs {
		i := min(int(r.EndMS/Bucket), n-1)
		if r.Failed {
			failed[i]++
		} else {
			ok[i]++
		}
	}
	return ok, failed
}

func timelinePlot(p Panel, end float64) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.Title
	pl.X.Label.Text = "seconds after the load started"
	pl.Y.Label.Text = fmt.Sprintf("requests per %d ms", Bucket)
	ok, failed := Buckets(p.Requests, end)
	line := func(counts []float64, c color.Color, name string) error {
		pts := make(plotter.XYs, len(counts))
		for i, v := range counts {
			pts[i] = plotter.XY{X: float64(i) * Bucket / 1000, Y: v}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.StepStyle, l.Color, l.Width = plotter.PostStep, c, vg.Points(1.2)
		pl.Add(l)
		pl.Legend.Add(name, l)
		return nil
	}
	if err := line(ok, green, "succeeded"); err != nil {
		return nil, err
	}
	if err := line(failed, red, "failed"); err != nil {
		return nil, err
	}
	top := max(slices.Max(ok), slices.Max(failed), 1)
	pl.Y.Min, pl.Y.Max = 0, top*1.35
	for i, e := range p.Events {
		x := e.AtMS / 1000
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: top * 1.2}})
		if err != nil {
			return nil, err
		}
		l.Color, l.Dashes = grey, []vg.Length{vg.Points(3), vg.Points(2)}
		pl.Add(l)
		// Labels take turns in height, so close events stay readable.
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: x, Y: top * (1.22 + 0.06*float64(i%2))}},
			Labels: []string{e.Label}})
		if err != nil {
			return nil, err
		}
		lab.TextStyle[0].Font.Size = vg.Points(7)
		pl.Add(lab)
	}
	pl.Legend.Top, pl.Legend.Left = true, false
	return pl, nil
}

// Series is one side of a distribution: its name and samples.
type Series struct {
	Name    string
	Samples []float64
}

// Distribution writes a PNG of the samples' cumulative distributions on a
// logarithmic axis (unit names it), one line per series.
func Distribution(path, title, unit string, series ...Series) error {
	pl := plot.New()
	pl.Title.Text = title
	pl.X.Label.Text = unit + " (log scale)"
	pl.Y.Label.Text = "fraction of samples at or below"
	pl.X.Scale = plot.LogScale{}
	pl.X.Tick.Marker = plot.LogTicks{Prec: -1}
	colors := []color.Color{green, red, grey}
	for i, s := range series {
		if len(s.Samples) == 0 {
			continue
		}
		v := slices.Clone(s.Samples)
		slices.Sort(v)
		pts := make(plotter.XYs, len(v))
		for j, x := range v {
			pts[j] = plotter.XY{X: math.Max(x, 0.01), Y: float64(j+1) / float64(len(v))}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.StepStyle, l.Color, l.Width = plotter.PreStep, colors[i%len(colors)], vg.Points(1.5)
		pl.Add(l)
		pl.Legend.Add(fmt.Sprintf("%s (%d)", s.Name, len(v)), l)
	}
	pl.Legend.Top, pl.Legend.Left = false, false
	pl.Y.Min, pl.Y.Max = 0, 1
	img := vgimg.New(7*vg.Inch, 3.5*vg.Inch)
	pl.Draw(draw.New(img))
	return save(path, img)
}

func save(path string, img *vgimg.Canvas) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
