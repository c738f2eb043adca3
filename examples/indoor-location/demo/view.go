package demo

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/progress"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// Live is a Reporter that draws a live terminal view with bubbletea: a progress bar, the
// running numbers, and the run's events. Stop it before printing anything else.
type Live struct {
	p    *tea.Program
	done chan struct{}
}

// NewLive starts the live view on out, which must be a terminal.
func NewLive(out io.Writer) *Live {
	l := &Live{done: make(chan struct{})}
	l.p = tea.NewProgram(newModel(), tea.WithOutput(out), tea.WithInput(nil), tea.WithoutSignalHandler())
	go func() {
		_, _ = l.p.Run()
		close(l.done)
	}()
	return l
}

// Update implements Reporter.
func (l *Live) Update(s Snapshot) { l.p.Send(s) }

// Event implements Reporter.
func (l *Live) Event(msg string) { l.p.Send(eventMsg{at: time.Now(), text: msg}) }

// Stop draws the last frame and gives the terminal back.
func (l *Live) Stop() {
	l.p.Send(stopMsg{})
	<-l.done
}

type eventMsg struct {
	at   time.Time
	text string
}

type stopMsg struct{}

type model struct {
	bar    progress.Model
	snap   Snapshot
	events []eventMsg
	width  int
	start  time.Time
}

func newModel() model {
	return model{bar: progress.New(progress.WithDefaultGradient(), progress.WithWidth(50)), width: 100, start: time.Now()}
}

func (m model) Init() tea.Cmd { return nil }

func (m model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case Snapshot:
		m.snap = msg
	case eventMsg:
		m.events = append(m.events, msg)
		if len(m.events) > 8 {
			m.events = m.events[len(m.events)-8:]
		}
	case tea.WindowSizeMsg:
		m.width = msg.Width
		m.bar.Width = max(20, min(60, msg.Width-30))
	case stopMsg:
		return m, tea.Quit
	}
	return m, nil
}

var (
	titleStyle = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("12"))
	labelStyle = lipgloss.NewStyle().Foreground(lipgloss.Color("8"))
	valueStyle = lipgloss.NewStyle().Bold(true)
	crashStyle = lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("9"))
	boxStyle   = lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).Padding(0, 1)
)

func (m model) View() string {
	s := m.snap
	var b strings.Builder
	b.WriteString(titleStyle.Render("liveagg demo") + labelStyle.Render("  the indoor-location pipeline, three levels, on an in-process Kafka") + "\n\n")
	frac, label := s.fraction()
	b.WriteString(m.bar.ViewAs(frac) + "  " + label + "\n\n")
	cell := func(name, value string) string {
		return lipgloss.NewStyle().Width(26).Render(labelStyle.Render(name+" ") + valueStyle.Render(value))
	}
	rows := [][2]string{
		{"records in/s", count(int64(s.RecordsPerSec))}, {"consumer lag", count(s.Lag)}, {"live series", count(s.Series)},
		{"state", bytesStr(s.StateBytes)}, {"rollups emitted", count(s.Windows)}, {"checkpoints", count(s.Checkpoints)},
		{"dead-lettered", count(s.DeadLettered)}, {"produced", count(s.Produced)},
	}
	var grid strings.Builder
	for i := 0; i < len(rows); i += 3 {
		var line []string
		for _, r := range rows[i:min(i+3, len(rows))] {
			line = append(line, cell(r[0], r[1]))
		}
		grid.WriteString(lipgloss.JoinHorizontal(lipgloss.Top, line...) + "\n")
	}
	b.WriteString(boxStyle.Render(strings.TrimRight(grid.String(), "\n")) + "\n")
	b.WriteString(labelStyle.Render(fmt.Sprintf("  %-18s %12s %10s %12s  %s", "spec", "records in", "series", "rows out", "workers")) + "\n")
	for _, l := range s.Levels {
		fmt.Fprintf(&b, "  %-18s %12s %10s %12s  %s\n", l.Spec, count(l.Records), count(l.Series), count(l.Emitted), strings.Join(l.Workers, " "))
	}
	for _, e := range m.events {
		text := e.text
		if strings.HasPrefix(text, "CRASH") {
			text = crashStyle.Render(text)
		}
		b.WriteString(labelStyle.Render(fmt.Sprintf("%6.1fs ", e.at.Sub(m.start).Seconds())) + truncate(text, m.width-8) + "\n")
	}
	return b.String()
}

// fraction is how far the run is, and the label next to the bar.
func (s Snapshot) fraction() (float64, string) {
	if s.Target > 0 {
		f := min(1, float64(s.Consumed)/float64(s.Target))
		return f, fmt.Sprintf("%s / %s records  %.0fs", count(s.Consumed), count(s.Target), s.Elapsed.Seconds())
	}
	return s.TimeDone, fmt.Sprintf("%s records  %.0fs", count(s.Consumed), s.Elapsed.Seconds())
}

// Plain is a Reporter for logs and pipes: a line a second and a line per event.
type Plain struct {
	out  io.Writer
	mu   sync.Mutex
	last time.Time
	snap Snapshot
}

// NewPlain reports to out in plain lines.
func NewPlain(out io.Writer) *Plain { return &Plain{out: out} }

// Update implements Reporter.
func (p *Plain) Update(s Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.snap = s
	if time.Since(p.last) < time.Second {
		return
	}
	p.last = time.Now()
	_, label := s.fraction()
	fmt.Fprintf(p.out, "%6.1fs  %s  in %s/s  lag %s  series %s  state %s  rollups %s  checkpoints %s  dead-lettered %s\n",
		s.Elapsed.Seconds(), label, count(int64(s.RecordsPerSec)), count(s.Lag), count(s.Series), bytesStr(s.StateBytes),
		count(s.Windows), count(s.Checkpoints), count(s.DeadLettered))
}

// Event implements Reporter.
func (p *Plain) Event(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "%6.1fs  %s\n", p.snap.Elapsed.Seconds(), msg)
}

// Stop implements the same surface as Live.
func (p *Plain) Stop() {}

func count(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + count(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func bytesStr(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func truncate(s string, w int) string {
	if w > 10 && len(s) > w {
		return s[:w-1] + "…"
	}
	return s
}

// WriteSummary prints the end of a run: the verification line, dead letters, the files and
// the top rollups.
func WriteSummary(out io.Writer, r *Result) {
	fmt.Fprintf(out, "\nrecords: %s in %.1fs\n", count(r.Records), r.Elapsed.Seconds())
	for _, c := range r.Crashes {
		fmt.Fprintf(out, "%s\n", c)
	}
	fmt.Fprintf(out, "dead letters: malformed %d (expected %d), late %d (expected %d), bad partials %d\n",
		r.DeadLetters["malformed"], r.ExpectedDead["malformed"], r.DeadLetters["late"], r.ExpectedDead["late"], r.DeadLetters["bad_partial"])
	if r.Records > 0 {
		fmt.Fprintf(out, "intermediate topics: %s partials, %s (%.1f bytes per raw record)\n",
			count(r.Partials), bytesStr(r.PartialBytes), float64(r.PartialBytes)/float64(r.Records))
	}
	for _, f := range r.Files {
		name := strings.TrimSuffix(filepath.Base(f), ".jsonl")
		fmt.Fprintf(out, "rollups: %-42s %8s verified\n", f, count(int64(r.PerSpec[name])))
	}
	if len(r.Top) > 0 {
		fmt.Fprintf(out, "\ntop org rollups of the largest window:\n")
		fmt.Fprintf(out, "  %-10s %-20s %9s %8s %9s\n", "org", "window", "events", "devices", "p50 rssi")
		for _, t := range r.Top {
			fmt.Fprintf(out, "  %-10s %-20s %9d %8.0f %9.1f\n", t.Key, t.Window, t.Count, t.Devices, t.P50RSSI)
		}
	}
	fmt.Fprintln(out)
	if r.OK() {
		fmt.Fprintf(out, "verified: %d windows, 0 lost, 0 duplicated\n", r.Windows)
		return
	}
	fmt.Fprintf(out, "NOT verified: %d windows expected, %d lost, %d duplicated, %d wrong, %d unexpected\n",
		r.Windows, r.Lost, r.Duplicated, r.Wrong, r.Unexpected)
	for _, d := range r.Differences {
		fmt.Fprintf(out, "  %s\n", d)
	}
}
