// rosterd's pages work without this script; it only adds copy buttons,
// dropping files onto a file form, and confirmation before removals.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
    if (!navigator.clipboard) return;
    b.hidden = false;
    b.addEventListener("click", function () {
      navigator.clipboard.writeText(b.dataset.copy).then(function () {
        b.textContent = "Copied";
        setTimeout(function () { b.textContent = "Copy"; }, 2000);
      });
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.dataset.confirm)) e.preventDefault();
    });
  });
  document.querySelectorAll("form.dropzone").forEach(function (f) {
    var input = f.querySelector("input[type=file]");
    if (!input) return;
    ["dragenter", "dragover"].forEach(function (t) {
      f.addEventListener(t, function (e) { e.preventDefault(); f.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      f.addEventListener(t, function () { f.classList.remove("over"); });
    });
    f.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) input.files = e.dataTransfer.files;
    });
  });
});
