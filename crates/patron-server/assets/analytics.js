// Draws the analytics dashboard with ECharts from the JSON the page carries in
// <script type="application/json" id="chart-data"> (written by the server, already translated).
// No inline script anywhere: the Content-Security-Policy allows scripts from this site only.
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || typeof echarts === "undefined") { return; }
  var d;
  try { d = JSON.parse(source.textContent); } catch (e) { return; }
  var L = d.labels || {};
  var palette = ["#b4232a", "#2563eb", "#d97706", "#059669", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
  var charts = [];

  function yuan(v) {
    return "¥" + Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  // Axis labels: 万/亿 on the Chinese page, k/M on the English one.
  var zh = (document.documentElement.lang || "").indexOf("zh") === 0;
  function shortYuan(v) {
    var a = Math.abs(v);
    if (zh && a >= 1e8) { return "¥" + (v / 1e8).toFixed(1) + "亿"; }
    if (zh && a >= 1e4) { return "¥" + (v / 1e4).toFixed(1) + "万"; }
    if (!zh && a >= 1e6) { return "¥" + (v / 1e6).toFixed(1) + "M"; }
    if (!zh && a >= 1e3) { return "¥" + (v / 1e3).toFixed(1) + "k"; }
    return "¥" + Math.round(v);
  }
  function names(items) { return items.map(function (x) { return x.name; }); }
  function pick(items, key) { return items.map(function (x) { return x[key]; }); }

  // Draws one chart and marks its container, so tests (and people) can tell it is done.
  function draw(id, option) {
    var node = document.getElementById(id);
    if (!node) { return; }
    var chart = echarts.init(node, null, { renderer: "canvas" });
    option.color = option.color || palette;
    option.animationDuration = 300;
    chart.setOption(option);
    node.setAttribute("data-drawn", "1");
    charts.push(chart);
  }

  var grid = { left: 56, right: 56, top: 36, bottom: 64, containLabel: false };
  var rotated = { interval: 0, rotate: 30, fontSize: 11 };

  draw("chart-rfm", {
    tooltip: { trigger: "axis" },
    legend: { data: [L.customers, L.revenue], top: 0 },
    grid: grid,
    xAxis: { type: "category", data: names(d.rfm), axisLabel: rotated },
    yAxis: [
      { type: "value", name: L.customers, minInterval: 1 },
      { type: "value", name: L.revenue, axisLabel: { formatter: shortYuan }, splitLine: { show: false } }
    ],
    series: [
      { name: L.customers, type: "bar", data: pick(d.rfm, "customers") },
      { name: L.revenue, type: "bar", yAxisIndex: 1, data: pick(d.rfm, "revenue"), tooltip: { valueFormatter: yuan } }
    ]
  });

  draw("chart-lifecycle", {
    tooltip: { trigger: "item", formatter: "{b}: {c}" },
    series: [{
      type: "funnel", sort: "none", gap: 2, left: "10%", width: "80%", top: 10, bottom: 10, minSize: "8%",
      label: { show: true, position: "inside", formatter: "{b} {c}" },
      data: d.lifecycle.map(function (x) { return { name: x.name, value: x.customers }; })
    }]
  });

  draw("chart-abcd", {
    tooltip: { trigger: "item", formatter: function (p) { return p.name + ": " + yuan(p.value) + " (" + p.percent + "%)"; } },
    legend: { bottom: 0 },
    series: [{
      name: L.revenue, type: "pie", radius: ["35%", "65%"], center: ["50%", "45%"],
      label: { formatter: "{b}\n{d}%" },
      data: d.abcd.map(function (x) { return { name: x.name, value: x.revenue }; })
    }]
  });

  function churn(id, items, horizontal) {
    var cat = { type: "category", data: names(items), axisLabel: horizontal ? { fontSize: 11 } : rotated };
    var val = { type: "value", minInterval: 1 };
    var stack = function (name, key, color) {
      return { name: name, type: "bar", stack: "all", data: pick(items, key), itemStyle: { color: color } };
    };
    draw(id, {
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      legend: { top: 0 },
      grid: horizontal ? { left: 110, right: 24, top: 36, bottom: 24 } : grid,
      xAxis: horizontal ? val : cat,
      yAxis: horizontal ? cat : val,
      series: [stack(L.none, "none", "#94a3b8"), stack(L.relative, "relative", "#d97706"), stack(L.absolute, "absolute", "#b91c1c")]
    });
  }
  churn("chart-churn-tier", d.churn_tier, false);
  churn("chart-churn-rfm", d.churn_rfm, true);

  function histogram(id, items, name, color) {
    draw(id, {
      tooltip: { trigger: "axis" },
      grid: grid,
      xAxis: { type: "category", data: pick(items, "label"), axisLabel: rotated, name: name, nameLocation: "middle", nameGap: 50 },
      yAxis: { type: "value", name: L.customers, minInterval: 1 },
      series: [{ name: L.customers, type: "bar", barCategoryGap: "8%", data: pick(items, "customers"), itemStyle: { color: color } }]
    });
  }
  histogram("chart-p-alive", d.p_alive, L.p_alive, "#2563eb");
  histogram("chart-clv", d.clv, L.clv, "#059669");

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
})();
