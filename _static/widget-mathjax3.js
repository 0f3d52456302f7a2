// ipywidgets' HTML manager (1.0.x) typesets widget labels through the MathJax 2 API,
// MathJax.Hub.Queue; this site loads MathJax 3, which has no Hub, so every labelled widget
// throws "Cannot read properties of undefined (reading 'Queue')" (jupyter-widgets/ipywidgets#3829).
// Route those calls to MathJax 3. MathJax 3 replaces window.MathJax when it loads, so the
// shim is installed now and again once the document is parsed (before widgets render).
(function () {
  function install() {
    var mathjax = window.MathJax;
    if (!mathjax || (mathjax.Hub && mathjax.Hub.Queue)) return;
    mathjax.Hub = {
      Queue: function (job) {
        var element = Array.isArray(job) ? job[2] : undefined;
        var current = window.MathJax;
        if (element && current && typeof current.typesetPromise === "function") {
          current.typesetPromise([element]).catch(function () {});
        }
        // Before MathJax 3 is ready there is nothing to do: its first pass typesets the page.
      },
    };
  }
  install();
  document.addEventListener("DOMContentLoaded", install);
  window.addEventListener("load", install);
})();
