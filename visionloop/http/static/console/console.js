// The console's only script of its own: draws each chart the page embeds as JSON with uPlot
// (vendored). A chart is <div class="chart"><script type="application/json">{spec}</script></div>,
// the spec made by visionloop/http/console/charts.py; pages and fragments htmx swaps in alike.
(function () {
  "use strict";
  var COLOURS = ["#2563eb", "#f59e0b", "#16a34a", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

  function series(spec) {
    var bars = spec.bars ? uPlot.paths.bars({size: [0.6, 60]}) : null;
    return [{label: spec.xlabel}].concat(spec.series.map(function (s, i) {
      var colour = s.colour || COLOURS[i % COLOURS.length];
      return bars ? {label: s.label, stroke: colour, fill: colour, paths: bars, points: {show: false}}
                  : {label: s.label, stroke: colour, width: 2, spanGaps: true, dash: s.dash || undefined,
                     points: {show: true, size: 5}};
    }));
  }

  function draw(holder) {
    if (holder.dataset.drawn) {
      return;
    }
    var spec = JSON.parse(holder.querySelector("script[type='application/json']").textContent);
    var scales = {x: {time: !!spec.time}};
    if (spec.ymax !== undefined) {
      scales.y = {range: [0, spec.ymax]};
    } else if (spec.counts) {
      scales.y = {range: function (u, min, max) { return [0, Math.max(1, max) * 1.1]; }};
    }
    if (spec.xmax !== undefined) {
      scales.x.range = [0, spec.xmax];
    } else if (spec.x.length === 1) {  // one point: a little room either side, not an axis of years
      var pad = spec.time ? 86400 : 1;
      scales.x.range = [spec.x[0] - pad, spec.x[0] + pad];
    }
    var options = {
      title: spec.title, width: Math.min(holder.clientWidth || 720, 900), height: spec.height || 260,
      scales: scales, series: series(spec),
      axes: [{label: spec.xlabel}, {label: spec.ylabel}],
    };
    holder.dataset.drawn = "1";
    holder.chart = new uPlot(options, [spec.x].concat(spec.series.map(function (s) { return s.values; })), holder);
  }

  // a box the review queue refused comes back as its part of the page with the reason (status 400): shown, not dropped
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status === 400 && event.detail.target.classList.contains("review-image")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  htmx.onLoad(function (root) {
    var holders = root.querySelectorAll ? root.querySelectorAll("div.chart") : [];
    Array.prototype.forEach.call(holders, draw);
  });
})();
