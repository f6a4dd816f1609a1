// MathJax 2 configuration for pymdownx.arithmatex (generic mode): typeset only the math that
// arithmatex marked (class "arithmatex"). MathJax and its STIX-Web fonts are served from the site
// (docs/_hooks/mathjax.py): the pages need no network.
window.MathJax = {
  config: ["TeX-AMS-MML_HTMLorMML-full.js"],
  TeX: { equationNumbers: { autoNumber: "none" } },
  tex2jax: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    ignoreClass: ".*",
    processClass: "arithmatex"
  },
  "HTML-CSS": {
    availableFonts: ["STIX-Web"], preferredFont: "STIX-Web", webFont: "STIX-Web", imageFont: null,
    linebreaks: { automatic: false }
  },
  showMathMenu: false,
  messageStyle: "none"
};
