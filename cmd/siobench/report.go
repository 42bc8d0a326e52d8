package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// recorder collects latencies (nanoseconds) from many goroutines.
type recorder struct {
	mu sync.Mutex
	ns []int64
}

func newRecorder() *recorder { return &recorder{ns: make([]int64, 0, 1024)} }

func (r *recorder) add(ns int64) {
	r.mu.Lock()
	r.ns = append(r.ns, ns)
	r.mu.Unlock()
}

// percentile is the q-quantile (0 < q <= 1), nearest rank; 0 when empty.
func (r *recorder) percentile(q float64) time.Duration {
	r.mu.Lock()
	s := slices.Clone(r.ns)
	r.mu.Unlock()
	return percentileOf(s, q)
}

func percentileOf(s []int64, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return time.Duration(s[max(0, min(i, len(s)-1))])
}

// Which way a figure is better, for the ratio column.
const (
	higherBetter = 1
	lowerBetter  = -1
	noRatio      = 0
)

// figure is one row of the table: a measured value for each server.
type figure struct {
	scenario string
	name     string
	unit     string
	better   int
	format   string             // fmt verb for the values, "%.0f" when empty
	values   map[string]float64 // by server name
}

// report holds every figure in the order they were first measured.
type report struct {
	figures []*figure
	servers []string
	notes   []string // said under the table
}

func (r *report) set(scenario, name, unit string, better int, format, server string, v float64) {
	for _, f := range r.figures {
		if f.scenario == scenario && f.name == name {
			f.values[server] = v
			return
		}
	}
	r.figures = append(r.figures, &figure{scenario: scenario, name: name, unit: unit, better: better, format: format,
		values: map[string]float64{server: v}})
}

// setAll sets a figure that belongs to no server (one of the machine's, such as the floor) in
// every server's column, with no ratio.
func (r *report) setAll(scenario, name, unit, format string, v float64) {
	for _, s := range r.servers {
		r.set(scenario, name, unit, noRatio, format, s, v)
	}
}

// insertAfter puts figures right after f, so that they are read beside it.
func (r *report) insertAfter(f *figure, figures ...*figure) {
	i := slices.Index(r.figures, f)
	if i < 0 {
		r.figures = append(r.figures, figures...)
		return
	}
	r.figures = slices.Insert(r.figures, i+1, figures...)
}

func (r *report) note(format string, args ...any) {
	if n := fmt.Sprintf(format, args...); !slices.Contains(r.notes, n) {
		r.notes = append(r.notes, n)
	}
}

func (f *figure) cell(server string) string {
	v, ok := f.values[server]
	if !ok {
		return "-"
	}
	format := f.format
	if format == "" {
		format = "%.0f"
	}
	return fmt.Sprintf(format, v)
}

// ratio says how many times better siobridge's figure is than the reference's: above 1,
// siobridge is better, whichever way the figure is better.
func (f *figure) ratio() string {
	a, okA := f.values[serverSiobridge]
	b, okB := f.values[serverReference]
	if !okA || !okB || f.better == noRatio {
		return ""
	}
	var x float64
	switch {
	case f.better == higherBetter && b > 0:
		x = a / b
	case f.better == lowerBetter && a > 0:
		x = b / a
	default:
		return ""
	}
	return fmt.Sprintf("%.2f×", x)
}

// writeText prints the table with text/tabwriter.
func (r *report) writeText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\tfigure\tunit\t%s\tsiobridge advantage\n", strings.Join(r.servers, "\t"))
	for _, f := range r.figures {
		cells := make([]string, len(r.servers))
		for i, s := range r.servers {
			cells[i] = f.cell(s)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.scenario, f.name, f.unit, strings.Join(cells, "\t"), f.ratio())
	}
	_ = tw.Flush()
	for _, n := range r.notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// writeMarkdown prints the same table as Markdown (docs/performance.md takes it as is).
func (r *report) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "| scenario | figure | unit | %s | siobridge advantage |\n", strings.Join(r.servers, " | "))
	fmt.Fprintf(w, "|---|---|---|%s---|\n", strings.Repeat("--:|", len(r.servers)))
	for _, f := range r.figures {
		cells := make([]string, len(r.servers))
		for i, s := range r.servers {
			cells[i] = f.cell(s)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", f.scenario, f.name, f.unit, strings.Join(cells, " | "), f.ratio())
	}
	if len(r.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
}
