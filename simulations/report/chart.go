package report

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	faultFill  = color.NRGBA{R: 230, G: 80, B: 60, A: 45}
	faultLine  = color.RGBA{R: 200, G: 40, B: 30, A: 255}
	healLine   = color.RGBA{R: 40, G: 140, B: 60, A: 255}
	throughput = color.RGBA{R: 30, G: 90, B: 200, A: 255}
	p99Color   = color.RGBA{R: 150, G: 60, B: 170, A: 255}
	p50Color   = color.RGBA{R: 120, G: 120, B: 120, A: 255}
)

// WriteChart draws throughput (ok/s) and latency (p50, p99 in ms) per second,
// stacked, with each fault's span shaded and its injection and heal marked by
// vertical lines, to a PNG at path.
func (r *Report) WriteChart(path string) error {
	top := plot.New()
	top.Title.Text = fmt.Sprintf("%s (seed %d): successful requests per second; faults shaded", r.Scenario, r.Seed)
	top.Y.Label.Text = "ok/s"
	top.Y.Min = 0
	bottom := plot.New()
	bottom.Title.Text = "latency of answered requests (ms)"
	bottom.X.Label.Text = "seconds since the workload started"
	bottom.Y.Label.Text = "ms"
	bottom.Y.Min = 0

	thr := make(plotter.XYs, len(r.Series))
	p99 := make(plotter.XYs, len(r.Series))
	p50 := make(plotter.XYs, len(r.Series))
	maxThr, maxLat := 1.0, 1.0
	for i, s := range r.Series {
		x := float64(s.T) + 0.5
		thr[i] = plotter.XY{X: x, Y: s.Throughput}
		p99[i] = plotter.XY{X: x, Y: float64(s.P99.Microseconds()) / 1000}
		p50[i] = plotter.XY{X: x, Y: float64(s.P50.Microseconds()) / 1000}
		maxThr = max(maxThr, thr[i].Y)
		maxLat = max(maxLat, p99[i].Y)
	}
	top.Y.Max, bottom.Y.Max = maxThr*1.1, maxLat*1.1
	end := r.Duration.Seconds()
	for _, p := range []*plot.Plot{top, bottom} {
		p.X.Min, p.X.Max = 0, end
		ymax := p.Y.Max
		for _, f := range r.Faults {
			a, b := f.InjectedAt.Seconds(), f.HealedAt.Seconds()
			if b <= a {
				b = a + 0.1
			}
			poly, err := plotter.NewPolygon(plotter.XYs{{X: a, Y: 0}, {X: b, Y: 0}, {X: b, Y: ymax}, {X: a, Y: ymax}})
			if err != nil {
				return err
			}
			poly.Color = faultFill
			poly.LineStyle.Width = 0
			p.Add(poly)
			for _, v := range []struct {
				x float64
				c color.Color
			}{{a, faultLine}, {b, healLine}} {
				l, err := plotter.NewLine(plotter.XYs{{X: v.x, Y: 0}, {X: v.x, Y: ymax}})
				if err != nil {
					return err
				}
				l.Color = v.c
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
				p.Add(l)
			}
		}
		p.Add(plotter.NewGrid())
	}
	lt, err := plotter.NewLine(thr)
	if err != nil {
		return err
	}
	lt.Color, lt.Width = throughput, vg.Points(1.5)
	top.Add(lt)
	top.Legend.Add("ok/s", lt)
	l99, err := plotter.NewLine(p99)
	if err != nil {
		return err
	}
	l99.Color, l99.Width = p99Color, vg.Points(1.5)
	l50, err := plotter.NewLine(p50)
	if err != nil {
		return err
	}
	l50.Color = p50Color
	bottom.Add(l99, l50)
	bottom.Legend.Add("p99", l99)
	bottom.Legend.Add("p50", l50)
	if len(r.Faults) > 0 {
		fl, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}})
		fl.Color = faultLine
		top.Legend.Add("fault injected", fl)
		hl, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}})
		hl.Color = healLine
		top.Legend.Add("healed", hl)
	}
	top.Legend.Top = true

	plots := [][]*plot.Plot{{top}, {bottom}}
	img := vgimg.New(vg.Points(1000), vg.Points(620))
	dc := draw.New(img)
	t := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: vg.Millimeter * 3,
		PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := plot.Align(plots, t, dc)
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
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
