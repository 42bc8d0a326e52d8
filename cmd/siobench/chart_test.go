package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestChartSVG: the chart is well-formed XML with one panel per figure and, in each, one line
// per server through its points in client order.
func TestChartSVG(t *testing.T) {
	c := &chart{}
	c.add("RSS (KiB)", serverReference, 10000, 14.9)
	c.add("RSS (KiB)", serverReference, 2500, 16.0)
	c.add("RSS (KiB)", serverSiobridge, 10000, 12.1)
	c.add("RSS (KiB)", serverSiobridge, 2500, 13.0)
	c.add("p99 (ms)", serverSiobridge, 10000, 440.7)
	var sb strings.Builder
	if err := c.writeSVG(&sb, []string{serverReference, serverSiobridge}, "caption & more"); err != nil {
		t.Fatal(err)
	}
	svg := sb.String()
	d := xml.NewDecoder(strings.NewReader(svg))
	counts := map[string]int{}
	var polylines []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			counts[se.Name.Local]++
			if se.Name.Local == "polyline" {
				for _, a := range se.Attr {
					if a.Name.Local == "points" {
						polylines = append(polylines, a.Value)
					}
				}
			}
		}
	}
	if counts["svg"] != 1 || counts["polyline"] != 3 || counts["circle"] != 5 {
		t.Fatalf("elements %v: want 1 svg, 3 polylines (2 servers + 1), 5 points", counts)
	}
	// Points are sorted by clients: the first x is left of the second.
	var x1, y1, x2, y2 float64
	if _, err := fmt.Sscanf(polylines[0], "%f,%f %f,%f", &x1, &y1, &x2, &y2); err != nil || x1 >= x2 {
		t.Fatalf("first line %q: points not in client order", polylines[0])
	}
	if !strings.Contains(svg, "caption &amp; more") {
		t.Fatal("caption not escaped")
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tt := range []struct{ in, want float64 }{{0, 1}, {0.7, 1}, {1, 1}, {1.2, 2}, {3, 5}, {7, 10}, {19500, 20000}, {440.7, 500}} {
		if got := niceCeil(tt.in); got != tt.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
