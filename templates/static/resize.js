(function () {
  // Framed on a website (the signup form's iframe): tell the embedding page how tall
  // this page is, so its snippet can size the frame. Only a height leaves the page.
  if (window.parent === window) { return; }
  var last = 0;
  function post() {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height && height !== last) {
      last = height;
      window.parent.postMessage({type: "optinproof:height", height: height}, "*");
    }
  }
  if (window.ResizeObserver) { new ResizeObserver(post).observe(document.documentElement); }
  window.addEventListener("load", post);
  post();
})();
