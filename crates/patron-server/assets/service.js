// Draws the service dashboard's Pareto chart with ECharts from the JSON the page carries in
// <script type="application/json" id="chart-data"> (no inline script: the CSP forbids it).
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  var node = document.getElementById("chart-pareto");
  if (!source || !node || typeof echarts === "undefined") { return; }
  var d;
  try { d = JSON.parse(source.textContent); } catch (e) { return; }
  var chart = echarts.init(node, null, { renderer: "canvas" });
  chart.setOption({
    animationDuration: 300,
    tooltip: { trigger: "axis" },
    legend: { data: [d.labels.count, d.labels.cumulative], top: 0 },
    grid: { left: 48, right: 56, top: 36, bottom: 48 },
    xAxis: { type: "category", data: d.categories, axisLabel: { interval: 0, rotate: 20 } },
    yAxis: [
      { type: "value", name: d.labels.count, minInterval: 1 },
      { type: "value", name: d.labels.cumulative, min: 0, max: 100, axisLabel: { formatter: "{value}%" }, splitLine: { show: false } }
    ],
    series: [
      { name: d.labels.count, type: "bar", data: d.counts.map(function (n, i) {
          return { value: n, itemStyle: { color: d.vital[i] ? "#b4232a" : "#94a3b8" } };
        }) },
      { name: d.labels.cumulative, type: "line", yAxisIndex: 1, data: d.cumulative,
        markLine: { silent: true, symbol: "none", data: [{ yAxis: 80 }], lineStyle: { type: "dashed" } } }
    ]
  });
  node.setAttribute("data-drawn", "1");
  window.addEventListener("resize", function () { chart.resize(); });
}());

// Churned customers by tier and reason: stacked bars.
(function () {
  "use strict";
  var source = document.getElementById("churn-data");
  var node = document.getElementById("chart-churn");
  if (!source || !node || typeof echarts === "undefined") { return; }
  var d;
  try { d = JSON.parse(source.textContent); } catch (e) { return; }
  var chart = echarts.init(node, null, { renderer: "canvas" });
  chart.setOption({
    animationDuration: 300,
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    legend: { top: 0 },
    grid: { left: 48, right: 16, top: 48, bottom: 32 },
    xAxis: { type: "category", data: d.segments },
    yAxis: { type: "value", minInterval: 1 },
    series: d.series.map(function (s) { return { name: s.name, type: "bar", stack: "churn", data: s.data }; })
  });
  node.setAttribute("data-drawn", "1");
  window.addEventListener("resize", function () { chart.resize(); });
}());
