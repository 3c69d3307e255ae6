// Draws a survey's score distribution and monthly trend with ECharts from the JSON the page
// carries in <script type="application/json" id="chart-data"> (no inline script: the CSP).
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || typeof echarts === "undefined") { return; }
  var d;
  try { d = JSON.parse(source.textContent); } catch (e) { return; }
  var charts = [];
  var dist = document.getElementById("chart-distribution");
  if (dist) {
    var colour = function (v) {
      if (d.nps_scale) { return v <= 6 ? "#b4232a" : (v <= 8 ? "#94a3b8" : "#15803d"); }
      return v <= 2 ? "#b4232a" : (v === 3 ? "#94a3b8" : "#15803d");
    };
    var c1 = echarts.init(dist, null, { renderer: "canvas" });
    c1.setOption({
      animationDuration: 300,
      tooltip: { trigger: "axis" },
      grid: { left: 40, right: 16, top: 16, bottom: 32 },
      xAxis: { type: "category", data: d.values },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ name: d.labels.answers, type: "bar", data: d.counts.map(function (n, i) {
        return { value: n, itemStyle: { color: colour(d.values[i]) } };
      }) }]
    });
    dist.setAttribute("data-drawn", "1");
    charts.push(c1);
  }
  var trend = document.getElementById("chart-trend");
  if (trend) {
    var c2 = echarts.init(trend, null, { renderer: "canvas" });
    c2.setOption({
      animationDuration: 300,
      tooltip: { trigger: "axis" },
      legend: { data: [d.labels.nps, d.labels.csat], top: 0 },
      grid: { left: 40, right: 40, top: 32, bottom: 32 },
      xAxis: { type: "category", data: d.months },
      yAxis: [{ type: "value", name: "NPS", min: -100, max: 100 }, { type: "value", name: d.labels.csat, min: 1, max: 5, splitLine: { show: false } }],
      series: [
        { name: d.labels.nps, type: "line", data: d.trend_nps, connectNulls: true },
        { name: d.labels.csat, type: "line", yAxisIndex: 1, data: d.trend_csat, connectNulls: true }
      ]
    });
    trend.setAttribute("data-drawn", "1");
    charts.push(c2);
  }
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
}());
