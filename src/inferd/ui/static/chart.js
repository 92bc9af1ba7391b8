// A small SVG line chart for the status page: a few series over time, no dependencies.
//
//   const chart = new LineChart(figure, {title: "requests/s", series: ["rate"], unit: "/s"});
//   chart.push(Date.now(), [12.5]);   // one value per series (null: a gap)
//
// The figure element carries data-points (points held) and data-last (the last value of the
// first series) so that tests and scripts can read what is drawn.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const COLOURS = ["#2563eb", "#d97706", "#dc2626", "#059669"];

function svgElement(name, attributes) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes || {})) {
    node.setAttribute(key, String(value));
  }
  return node;
}

function formatValue(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) {
    return "–";
  }
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return value.toFixed(digits) + (unit || "");
}

class LineChart {
  /**
   * @param {HTMLElement} figure where the chart goes (its content is replaced)
   * @param {{title: string, series: string[], unit?: string, capacity?: number}} options
   */
  constructor(figure, options) {
    this.figure = figure;
    this.series = options.series;
    this.unit = options.unit || "";
    this.capacity = options.capacity || 150;
    this.times = [];
    this.values = this.series.map(() => []);
    this.width = 320;
    this.height = 120;
    this.pad = {left: 44, right: 8, top: 8, bottom: 18};
    figure.replaceChildren();
    figure.classList.add("chart");
    const caption = document.createElement("figcaption");
    caption.textContent = options.title;
    this.legend = document.createElement("span");
    this.legend.className = "legend";
    caption.append(" ", this.legend);
    this.svg = svgElement("svg", {viewBox: `0 0 ${this.width} ${this.height}`,
                                  role: "img", "aria-label": options.title});
    figure.append(caption, this.svg);
    this.render();
  }

  /** Add one point per series at time `t` (ms); the oldest drop out past `capacity`. */
  push(t, values) {
    this.times.push(t);
    values.forEach((v, i) => this.values[i].push(v === undefined ? null : v));
    if (this.times.length > this.capacity) {
      this.times.shift();
      this.values.forEach((list) => list.shift());
    }
    this.render();
  }

  /** The range of the y axis: from 0 (or the lowest value) to a little over the highest. */
  yRange() {
    let low = 0;
    let high = 0;
    for (const list of this.values) {
      for (const v of list) {
        if (v !== null) {
          low = Math.min(low, v);
          high = Math.max(high, v);
        }
      }
    }
    if (high === low) {
      high = low + 1;
    }
    return [low, high * 1.1];
  }

  render() {
    const {left, right, top, bottom} = this.pad;
    const w = this.width - left - right;
    const h = this.height - top - bottom;
    const [low, high] = this.yRange();
    const n = this.times.length;
    // The newest point sits at the right edge; older ones move left as points arrive.
    const x = (i) => left + w - ((n - 1 - i) / (this.capacity - 1)) * w;
    const y = (v) => top + h - ((v - low) / (high - low)) * h;
    this.svg.replaceChildren(
      svgElement("rect", {x: left, y: top, width: w, height: h, class: "plot"}),
      this.label(left - 4, top + 8, formatValue(high, this.unit), "end"),
      this.label(left - 4, top + h, formatValue(low, this.unit), "end"),
      this.label(left, this.height - 4, n ? `${n} point${n === 1 ? "" : "s"}` : "waiting for data", "start"),
    );
    this.values.forEach((list, s) => {
      // A null starts a new segment, so a gap is drawn as one.
      let points = [];
      const flush = () => {
        if (points.length) {
          this.svg.append(svgElement("polyline", {points: points.join(" "), fill: "none",
                                                   stroke: COLOURS[s % COLOURS.length],
                                                   "stroke-width": 1.5}));
        }
        points = [];
      };
      list.forEach((v, i) => (v === null ? flush() : points.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`)));
      flush();
      const last = list[n - 1];
      if (n && last !== null) {  // a dot on the newest value: visible even as a lone point
        this.svg.append(svgElement("circle", {cx: x(n - 1).toFixed(1), cy: y(last).toFixed(1), r: 2,
                                              fill: COLOURS[s % COLOURS.length]}));
      }
    });
    this.legend.replaceChildren(...this.series.map((name, s) => {
      const item = document.createElement("span");
      item.style.color = COLOURS[s % COLOURS.length];
      item.textContent = `${name} ${formatValue(this.values[s][n - 1], this.unit)}`;
      return item;
    }));
    const last = n ? this.values[0][n - 1] : null;
    this.figure.dataset.points = String(n);
    this.figure.dataset.last = last === null ? "" : String(last);
  }

  label(x, y, text, anchor) {
    const node = svgElement("text", {x, y, "text-anchor": anchor, class: "axis"});
    node.textContent = text;
    return node;
  }
}

window.LineChart = LineChart;
window.formatValue = formatValue;
