// The live character counter of an input with data-limit (the send-from name): "n/limit", and the
// server's sentence once past the limit. Only a hint: the server refuses what is too long.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input[data-limit]").forEach(function (input) {
    var limit = parseInt(input.dataset.limit, 10);
    var counter = document.getElementById(input.getAttribute("aria-describedby"));
    function update() {
      var length = Array.from(input.value).length;
      counter.textContent = length > limit
        ? "You have exceeded the maximum character limit for the send-from name (" + length + "/" + limit + ")."
        : length + "/" + limit;
      counter.classList.toggle("over", length > limit);
    }
    input.addEventListener("input", update);
    update();
  });
});
