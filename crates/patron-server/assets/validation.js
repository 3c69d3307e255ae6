// Draws the holdout validation card of the analytics dashboard with ECharts from the JSON the
// card carries in <script type="application/json" id="validation-data"> (written by the
// server, already translated): conditional expectations, the calibration histogram, and the
// weekly and cumulative tracking with the calibration end marked (Fader, Hardie & Lee 2005).
(function () {
  "use strict";
  var source = document.getElementById("validation-data");
  if (!source || typeof echarts === "undefined") { return; }
  var d;
  try { d = JSON.parse(source.textContent); } catch (e) { return; }
  var L = d.labels || {};
  var palette = ["#b4232a", "#2563eb", "#d97706", "#059669"];
  var charts = [];
  function round(v) { return v === null || v === undefined ? v : Math.round(v * 1000) / 1000; }

  function draw(id, option) {
    var node = document.getElementById(id);
    if (!node) { return; }
    var chart = echarts.init(node, null, { renderer: "canvas" });
    option.color = palette;
    option.animationDuration = 300;
    chart.setOption(option);
    node.setAttribute("data-drawn", "1");
    charts.push(chart);
  }
  var grid = { left: 56, right: 24, top: 36, bottom: 48, containLabel: false };
  var mark = d.calibration_end_week ? {
    symbol: "none", label: { formatter: L.calibration_end }, lineStyle: { type: "dashed", color: "#666" },
    data: [{ xAxis: d.calibration_end_week }]
  } : undefined;

  draw("chart-val-conditional", {
    tooltip: { trigger: "axis", valueFormatter: round },
    legend: { data: [L.actual, L.predicted], top: 0 },
    grid: grid,
    xAxis: { type: "category", name: L.frequency, nameLocation: "middle", nameGap: 28, data: d.buckets },
    yAxis: { type: "value", name: L.per_customer },
    series: [
      { name: L.actual, type: "bar", data: d.actual_mean },
      { name: L.predicted, type: "bar", data: d.predicted_mean.map(round) }
    ]
  });
  draw("chart-val-histogram", {
    tooltip: { trigger: "axis", valueFormatter: round },
    legend: { data: [L.actual, L.expected], top: 0 },
    grid: grid,
    xAxis: { type: "category", name: L.frequency, nameLocation: "middle", nameGap: 28, data: d.buckets },
    yAxis: { type: "value", name: L.customers },
    series: [
      { name: L.actual, type: "bar", data: d.actual_customers },
      { name: L.expected, type: "bar", data: d.expected_customers.map(round) }
    ]
  });
  function cumulative(xs) {
    var s = 0;
    return xs.map(function (x) { s += x; return Math.round(s * 1000) / 1000; });
  }
  function tracking(id, actual, expected) {
    draw(id, {
      tooltip: { trigger: "axis", valueFormatter: round },
      legend: { data: [L.actual, L.expected], top: 0 },
      grid: grid,
      xAxis: { type: "category", data: d.weeks, axisLabel: { fontSize: 10 } },
      yAxis: { type: "value" },
      series: [
        { name: L.actual, type: "line", showSymbol: false, data: actual, markLine: mark },
        { name: L.expected, type: "line", showSymbol: false, lineStyle: { type: "dashed" }, data: expected }
      ]
    });
  }
  tracking("chart-val-weekly", d.weekly_actual, d.weekly_expected.map(round));
  tracking("chart-val-cumulative", cumulative(d.weekly_actual), cumulative(d.weekly_expected));

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
})();
