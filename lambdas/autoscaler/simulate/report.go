package simulate

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WriteTable prints the results side by side.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\tmean CPU\tp10 CPU\tminutes lag > SLO\t(fraction)\tmax lag s\tworker-hours\tcost spot $\tcost on-demand $\tscaling actions\tactions/day\tmoved partitions\tinterruptions\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.1f%%\t%.1f%%\t%d\t%.4f%%\t%.0f\t%.0f\t%.2f\t%.2f\t%d\t%.0f\t%d\t%d\t\n", r.Policy, 100*r.MeanCPU, 100*r.P10CPU,
			r.SLOViolationMinutes, 100*r.SLOViolationMinutesFraction, r.MaxLagSeconds, r.WorkerHours, r.Cost, r.CostOnDemand,
			r.ScalingActions, r.ActionsPerDay, r.MovedPartitions, r.Interruptions)
	}
	return tw.Flush()
}

// WriteJSON prints one JSON object per policy, one per line.
func WriteJSON(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	for _, r := range results {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// Plot draws load and capacity, workers, lag and CPU over time for the given results (the
// first two or three read best) into a PNG.
func Plot(w io.Writer, tr Trace, results []Result) error {
	colors := []color.Color{color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 255}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 255},
		color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 255}, color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 255}}
	// One point every 10 minutes keeps 14 days readable: the maximum of the ten for load,
	// capacity, workers and lag (peaks matter), the mean for CPU.
	hours := func(vals []float64, scale float64, mean bool) plotter.XYs {
		var pts plotter.XYs
		for i := 0; i < len(vals); i += 10 {
			m, sum := vals[i], 0.0
			end := min(i+10, len(vals))
			for j := i; j < end; j++ {
				m = max(m, vals[j])
				sum += vals[j]
			}
			if mean {
				m = sum / float64(end-i)
			}
			pts = append(pts, plotter.XY{X: float64(i) / 1440, Y: m * scale})
		}
		return pts
	}
	panel := func(title, ylabel string) *plot.Plot {
		p := plot.New()
		p.Title.Text = title
		p.Y.Label.Text = ylabel
		p.X.Label.Text = "day"
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		return p
	}
	load := panel(fmt.Sprintf("load and capacity (%s)", tr.Name), "records/s (millions)")
	workers := panel("workers (running + booting)", "workers")
	lag := panel("lag (10-minute max)", "seconds")
	cpu := panel("CPU utilisation of running workers (10-minute mean)", "fraction")
	add := func(p *plot.Plot, name string, pts plotter.XYs, c color.Color, width vg.Length) error {
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color, l.Width = c, width
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	if err := add(load, "ingest", hours(tr.Rate, 1e-6, false), color.Black, vg.Points(0.7)); err != nil {
		return err
	}
	for i, r := range results {
		c := colors[i%len(colors)]
		for _, s := range []struct {
			p     *plot.Plot
			vals  []float64
			scale float64
			mean  bool
		}{{load, r.Capacity, 1e-6, false}, {workers, r.Workers, 1, false}, {lag, r.LagSeconds, 1, false}, {cpu, r.CPU, 1, true}} {
			if err := add(s.p, r.Policy, hours(s.vals, s.scale, s.mean), c, vg.Points(0.8)); err != nil {
				return err
			}
		}
	}
	plots := [][]*plot.Plot{{load}, {workers}, {lag}, {cpu}}
	img := vgimg.New(vg.Points(1400), vg.Points(1400))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 4, Cols: 1, PadX: vg.Points(4), PadY: vg.Points(8), PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(8)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}
