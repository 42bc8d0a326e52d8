package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
)

// chart collects figures measured at several client counts, to be drawn against the count:
// one panel per figure, one line per server.
type chart struct {
	panels []*panel
}

// panel is one figure: its points by server.
type panel struct {
	title  string
	points map[string][]point // by server name
}

type point struct{ clients, value float64 }

// add records a server's value of the figure titled title at n clients.
func (c *chart) add(title, server string, n int, v float64) {
	i := slices.IndexFunc(c.panels, func(p *panel) bool { return p.title == title })
	if i < 0 {
		c.panels = append(c.panels, &panel{title: title, points: map[string][]point{}})
		i = len(c.panels) - 1
	}
	p := c.panels[i]
	p.points[server] = append(p.points[server], point{float64(n), v})
	slices.SortFunc(p.points[server], func(a, b point) int { return int(a.clients - b.clients) })
}

// The chart's geometry, in SVG user units.
const (
	panelW, panelH         = 420, 260
	marginL, marginR       = 64, 16
	marginT, marginB       = 36, 44
	legendH                = 28
	seriesReference        = "#d9822b" // the reference's colour
	seriesSiobridge        = "#2b6cb0" // siobridge's
	gridColour, textColour = "#dddddd", "#222222"
)

// writeSVG draws every panel side by side, with a shared legend, as a standalone SVG.
func (c *chart) writeSVG(w io.Writer, servers []string, caption string) error {
	width := panelW * max(1, len(c.panels))
	height := panelH + legendH
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&sb, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	for i, p := range c.panels {
		p.draw(&sb, float64(i*panelW), servers)
	}
	// Legend and caption.
	x := float64(marginL)
	y := float64(panelH + legendH/2)
	for _, s := range servers {
		fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"/>`+"\n", x, y, x+24, y, colourOf(s))
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" dominant-baseline="middle" fill="%s">%s</text>`+"\n", x+30, y, textColour, html.EscapeString(s))
		x += 120
	}
	if caption != "" {
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" dominant-baseline="middle" fill="#666666">%s</text>`+"\n", x, y, html.EscapeString(caption))
	}
	sb.WriteString("</svg>\n")
	_, err := io.WriteString(w, sb.String())
	return err
}

func colourOf(server string) string {
	if server == serverReference {
		return seriesReference
	}
	return seriesSiobridge
}

// draw writes one panel at horizontal offset x0: axes from 0, a grid, the lines and points.
func (p *panel) draw(sb *strings.Builder, x0 float64, servers []string) {
	var maxX, maxY float64
	for _, pts := range p.points {
		for _, pt := range pts {
			maxX = max(maxX, pt.clients)
			maxY = max(maxY, pt.value)
		}
	}
	maxX = niceCeil(maxX)
	maxY = niceCeil(maxY)
	plotW := float64(panelW - marginL - marginR)
	plotH := float64(panelH - marginT - marginB)
	px := func(v float64) float64 { return x0 + marginL + v/maxX*plotW }
	py := func(v float64) float64 { return marginT + plotH - v/maxY*plotH }

	fmt.Fprintf(sb, `<text x="%.0f" y="20" font-weight="bold" fill="%s">%s</text>`+"\n", x0+marginL, textColour, html.EscapeString(p.title))
	for i := 0; i <= 4; i++ {
		vy := maxY * float64(i) / 4
		fmt.Fprintf(sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", px(0), py(vy), px(maxX), py(vy), gridColour)
		fmt.Fprintf(sb, `<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle" fill="%s">%s</text>`+"\n", px(0)-6, py(vy), textColour, axisLabel(vy))
		vx := maxX * float64(i) / 4
		fmt.Fprintf(sb, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s">%s</text>`+"\n", px(vx), py(0)+16, textColour, axisLabel(vx))
	}
	fmt.Fprintf(sb, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s">clients</text>`+"\n", px(maxX/2), py(0)+34, textColour)
	fmt.Fprintf(sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", px(0), py(0), px(0), py(maxY), textColour)
	for _, s := range servers {
		pts := p.points[s]
		if len(pts) == 0 {
			continue
		}
		var path []string
		for _, pt := range pts {
			path = append(path, fmt.Sprintf("%.1f,%.1f", px(pt.clients), py(pt.value)))
		}
		fmt.Fprintf(sb, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(path, " "), colourOf(s))
		for _, pt := range pts {
			fmt.Fprintf(sb, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s: %s at %.0f clients</title></circle>`+"\n",
				px(pt.clients), py(pt.value), colourOf(s), html.EscapeString(s), axisLabel(pt.value), pt.clients)
		}
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v <= 0), for axis ends.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

// axisLabel prints an axis value briefly: 2500, 12.5, 10k.
func axisLabel(v float64) string {
	switch {
	case v >= 10000 && math.Mod(v, 1000) == 0:
		return fmt.Sprintf("%.0fk", v/1000)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}
