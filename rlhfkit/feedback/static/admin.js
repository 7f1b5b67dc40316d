// Progress bars: widths set from data attributes (inline styles are blocked by the CSP).
document.querySelectorAll(".bar > div[data-width]").forEach((el) => {
  el.style.width = Math.min(100, Number(el.dataset.width)) + "%";
});
