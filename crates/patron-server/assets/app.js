// Sends the page's CSRF token with every htmx request (forms carry it as a hidden field).
document.addEventListener("htmx:configRequest", function (e) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { e.detail.headers["X-CSRF-Token"] = meta.content; }
});
