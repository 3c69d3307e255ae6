// Draws "how the base is changing" on the analytics dashboard with ECharts, from the JSON the
// page carries in <script type="application/json" id="history-data"> (already translated):
// the ABCD migration Sankey (a click on a flow opens its customers as a segment), the cohort
// heat map, the cumulative revenue per customer of each cohort, and the monthly trends.
// No inline script: the Content-Security-Policy allows scripts from this site only.
(function () {
  "use strict";
  var source = document.getElementById("history-data");
  if (!source || typeof echarts === "undefined") { return; }
  var d;
  try { d = JSON.parse(source.textContent); } catch (e) { return; }
  var L = d.labels || {};
  var palette = ["#b4232a", "#2563eb", "#d97706", "#059669", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
  var charts = [];

  function draw(id, option) {
    var node = document.getElementById(id);
    if (!node) { return null; }
    var chart = echarts.init(node, null, { renderer: "canvas" });
    option.color = option.color || palette;
    option.animation = false;
    chart.setOption(option);
    node.setAttribute("data-drawn", "1");
    charts.push(chart);
    return chart;
  }
  var grid = { left: 56, right: 56, top: 36, bottom: 48, containLabel: false };

  // Migration: flows from the previous run's tiers to the latest run's.
  if (d.sankey && d.sankey.links.length) {
    var sankey = draw("chart-migration", {
      tooltip: { trigger: "item", formatter: function (p) {
        if (p.dataType === "edge") { return p.data.source + " → " + p.data.target + ": " + p.data.value; }
        return p.name + ": " + p.value;
      } },
      series: [{
        type: "sankey", left: 8, right: 120, top: 8, bottom: 8, nodeAlign: "justify",
        emphasis: { focus: "adjacency" }, lineStyle: { color: "gradient", curveness: 0.5, opacity: 0.35 },
        data: d.sankey.nodes, links: d.sankey.links
      }]
    });
    if (sankey) {
      sankey.on("click", function (p) {
        if (p.dataType === "edge" && p.data && p.data.url) { window.location.href = p.data.url; }
      });
    }
    // The flows as links too: reachable without a pointer, and readable by tests.
    var list = document.createElement("ul");
    list.id = "migration-flows";
    list.className = "small";
    d.sankey.links.forEach(function (l) {
      var li = document.createElement("li");
      var text = l.source + " → " + l.target + ": " + l.value;
      if (l.url) {
        var a = document.createElement("a");
        a.href = l.url;
        a.textContent = text;
        li.appendChild(a);
      } else {
        li.textContent = text;
      }
      list.appendChild(li);
    });
    var box = document.getElementById("migration");
    if (box) { box.appendChild(list); }
  } else {
    var none = document.getElementById("migration-none");
    if (none) { none.hidden = false; }
    var hint = document.getElementById("migration-hint");
    if (hint) { hint.hidden = true; }
  }

  // Cohorts: share of each cohort buying k months after its first month.
  var cohorts = d.cohorts || [];
  var width = cohorts.reduce(function (m, c) { return Math.max(m, c.share.length); }, 0);
  var offsets = [];
  for (var k = 0; k < width; k++) { offsets.push(String(k)); }
  var cells = [];
  cohorts.forEach(function (c, row) {
    c.share.forEach(function (v, col) { cells.push([col, row, Math.round(v * 1000) / 10]); });
  });
  draw("chart-cohort-heatmap", {
    tooltip: { formatter: function (p) {
      var c = cohorts[p.value[1]];
      return c.cohort + " (" + c.customers + ") +" + p.value[0] + ": " + p.value[2] + "%";
    } },
    grid: { left: 72, right: 16, top: 16, bottom: 72 },
    xAxis: { type: "category", data: offsets, name: L.months_since_first, nameLocation: "middle", nameGap: 28 },
    yAxis: { type: "category", data: cohorts.map(function (c) { return c.cohort; }), inverse: true },
    visualMap: { min: 0, max: 100, calculable: false, orient: "horizontal", left: "center", bottom: 0, itemHeight: 120,
      inRange: { color: ["#f8fafc", "#93c5fd", "#1d4ed8"] }, text: ["100%", "0%"] },
    series: [{ name: L.share_active, type: "heatmap", data: cells, label: { show: width <= 12, fontSize: 9,
      formatter: function (p) { return p.value[2] ? Math.round(p.value[2]) : ""; } } }]
  });

  draw("chart-cohort-revenue", {
    tooltip: { trigger: "axis" },
    legend: { type: "scroll", bottom: 0 },
    grid: grid,
    xAxis: { type: "category", data: offsets, name: L.months_since_first, nameLocation: "middle", nameGap: 28 },
    yAxis: { type: "value", name: L.revenue_per_customer },
    series: cohorts.filter(function (c) { return c.customers > 0; }).map(function (c) {
      return { name: c.cohort, type: "line", showSymbol: false, data: c.cumulative };
    })
  });

  var t = d.trends;
  if (t) {
    draw("chart-trends-customers", {
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: grid,
      xAxis: { type: "category", data: t.months },
      yAxis: { type: "value", minInterval: 1 },
      series: [
        { name: L.new_customers, type: "line", data: t.new_customers },
        { name: L.active_customers, type: "line", data: t.active_customers },
        { name: L.repeat_customers, type: "line", data: t.repeat_customers }
      ]
    });
    draw("chart-trends-revenue", {
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: grid,
      xAxis: { type: "category", data: t.months },
      yAxis: [{ type: "value", name: L.orders_n, minInterval: 1 }, { type: "value", name: L.revenue_yuan, splitLine: { show: false } }],
      series: [
        { name: L.orders_n, type: "line", data: t.orders },
        { name: L.revenue_yuan, type: "line", yAxisIndex: 1, data: t.revenue }
      ]
    });
    draw("chart-trends-churn", {
      tooltip: { trigger: "axis" },
      grid: grid,
      xAxis: { type: "category", data: t.months },
      yAxis: { type: "value", name: "%" },
      series: [{ name: L.churn_rate, type: "line", connectNulls: true, data: t.churn_rate, itemStyle: { color: "#b91c1c" } }]
    });
  }

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
})();
