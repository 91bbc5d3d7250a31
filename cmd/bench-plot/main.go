// Command bench-plot draws the benchmark history that scripts/bench-all
// records in docs/bench-history/ (one JSON file per run): for each area one
// SVG with a line per figure, the figure's ratio against its reference
// (higher is better for tvix) run after run, and its target dashed, so a
// regression shows at a glance.
//
//	bench-plot [-history docs/bench-history] [-out docs/bench-history] [-format svg|png]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// record is one run of scripts/bench-all.
type record struct {
	Commit  string                       `json:"commit"`
	Date    string                       `json:"date"`
	Label   string                       `json:"label"`
	Figures map[string]map[string]figure `json:"figures"` // area -> name -> figure
}

type figure struct {
	Ratio  *float64 `json:"ratio"`
	Target *float64 `json:"target"`
}

func main() {
	history := flag.String("history", "docs/bench-history", "directory of run records (*.json)")
	out := flag.String("out", "docs/bench-history", "directory the plots are written to")
	format := flag.String("format", "svg", "svg or png")
	flag.Parse()
	if err := run(*history, *out, *format); err != nil {
		fmt.Fprintln(os.Stderr, "bench-plot:", err)
		os.Exit(1)
	}
}

func load(dir string) ([]record, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var runs []record
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		runs = append(runs, r)
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Date < runs[j].Date })
	return runs, nil
}

func run(historyDir, outDir, format string) error {
	runs, err := load(historyDir)
	if err != nil {
		return fmt.Errorf("read history: %w", err)
	}
	if len(runs) == 0 {
		return fmt.Errorf("no runs in %s (scripts/bench-all --quick records them)", historyDir)
	}
	areas := map[string]map[string]bool{}
	for _, r := range runs {
		for area, figs := range r.Figures {
			if areas[area] == nil {
				areas[area] = map[string]bool{}
			}
			for name := range figs {
				areas[area][name] = true
			}
		}
	}
	ticks := make([]plot.Tick, len(runs))
	for i, r := range runs {
		label := r.Commit
		if len(label) > 7 {
			label = label[:7]
		}
		if r.Label != "" {
			label += "\n" + r.Label
		}
		ticks[i] = plot.Tick{Value: float64(i), Label: label}
	}
	for area, names := range areas {
		if err := plotArea(area, sortedKeys(names), runs, ticks, filepath.Join(outDir, area+"."+format)); err != nil {
			return fmt.Errorf("plot %s: %w", area, err)
		}
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func plotArea(area string, names []string, runs []record, ticks []plot.Tick, path string) error {
	p := plot.New()
	p.Title.Text = area + ": tvix / reference (higher is better; dashed: target)"
	p.X.Label.Text = "run (commit)"
	p.Y.Label.Text = "ratio"
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min = 0
	p.X.Min, p.X.Max = -0.5, float64(len(runs))-0.5
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	for i, name := range names {
		var pts plotter.XYs
		var target *float64
		for x, r := range runs {
			f, ok := r.Figures[area][name]
			if !ok || f.Ratio == nil {
				continue
			}
			pts = append(pts, plotter.XY{X: float64(x), Y: *f.Ratio})
			if f.Target != nil {
				target = f.Target
			}
		}
		if len(pts) == 0 {
			continue
		}
		c := plotutil.Color(i)
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color, points.Color = c, c
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(strings.ReplaceAll(name, "_", " "), line, points)
		if target != nil {
			t, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: *target}, {X: p.X.Max, Y: *target}})
			if err != nil {
				return err
			}
			t.Color = withAlpha(c, 0xa0)
			t.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(t)
		}
		if *maxY(pts) > p.Y.Max {
			p.Y.Max = *maxY(pts)
		}
	}
	p.Y.Max *= 1.35 // room for the legend above the lines
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Legend.ThumbnailWidth = vg.Points(18)
	p.Legend.Padding = vg.Points(1)
	p.Legend.YOffs = -vg.Points(2)
	w := vg.Length(max(6, 1.2*float64(len(runs)))) * vg.Inch
	return p.Save(w, 4.5*vg.Inch, path)
}

func maxY(pts plotter.XYs) *float64 {
	m := 0.0
	for _, p := range pts {
		m = max(m, p.Y)
	}
	return &m
}

func withAlpha(c color.Color, a uint8) color.Color {
	r, g, b, _ := c.RGBA()
	return color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), a}
}
