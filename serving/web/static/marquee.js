// Marquee's pages: card actions sent to /users/{u}/movies/{m}/actions with the API token kept
// in this browser session (sessionStorage), cards replaced or updated without a reload.
// Plain JavaScript, served from the package: nothing is fetched from elsewhere.
"use strict";
(function () {
  const KEY = "marquee-token";
  const tokenForm = document.getElementById("token-form");
  const tokenInput = document.getElementById("token-input");
  const tokenState = document.getElementById("token-state");
  let pending = null; // the action waiting for a token

  function token() { return sessionStorage.getItem(KEY) || ""; }
  function showTokenState() {
    if (tokenState) tokenState.textContent = token() ? "API token saved for this session." : "";
  }
  function askToken(then) {
    pending = then;
    tokenForm.hidden = false;
    tokenInput.focus();
  }
  if (tokenForm) {
    tokenForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = tokenInput.value.trim();
      if (!value) return;
      sessionStorage.setItem(KEY, value);
      tokenInput.value = "";
      tokenForm.hidden = true;
      showTokenState();
      const then = pending; pending = null;
      if (then) then();
    });
  }
  showTokenState();

  const grid = document.getElementById("cards");
  if (!grid) return;
  const user = grid.dataset.user;

  function status(card, text, isError) {
    const el = card.querySelector(".card-status");
    el.textContent = text;
    el.classList.toggle("error", !!isError);
  }

  async function send(card, payload) {
    const movie = card.dataset.movie;
    const res = await fetch(
      `/users/${encodeURIComponent(user)}/movies/${encodeURIComponent(movie)}/actions`,
      {
        method: "POST",
        headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token() },
        body: JSON.stringify(Object.assign({ recommendation_id: card.dataset.rec || null }, payload)),
      });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (res.status === 401) sessionStorage.removeItem(KEY);
    if (!res.ok) {
      let msg = body && body.detail;
      if (Array.isArray(msg)) msg = msg.map((d) => d.msg || String(d)).join("; ");
      throw new Error(msg || `request failed (${res.status})`);
    }
    return body;
  }

  async function replace(card) {
    if (grid.dataset.mode === "browse") { // browsing: no recommendation takes its place
      const next = card.nextElementSibling || card.previousElementSibling;
      card.remove();
      const target = next ? next.querySelector("h2 a") : document.getElementById("main");
      if (target) target.focus();
      return;
    }
    const shown = Array.from(grid.querySelectorAll(".card")).map((c) => c.dataset.movie);
    const params = new URLSearchParams({ exclude: shown.join(","), n: "1" });
    const res = await fetch(`/users/${encodeURIComponent(user)}/cards?${params}`);
    const next = card.nextElementSibling || card.previousElementSibling;
    let focusTarget = null;
    if (res.ok) {
      const tpl = document.createElement("template");
      tpl.innerHTML = await res.text(); // our own server-rendered, escaped card markup
      const fresh = tpl.content.querySelector(".card");
      if (fresh) {
        card.replaceWith(fresh);
        focusTarget = fresh.querySelector("h2 a");
      }
    }
    if (!focusTarget) {
      card.remove();
      focusTarget = next ? next.querySelector("h2 a") : document.getElementById("main");
    }
    if (focusTarget) focusTarget.focus();
  }

  function addBadge(card, text) {
    let list = card.querySelector(".badges");
    if (!list) {
      list = document.createElement("ul");
      list.className = "badges";
      card.querySelector(".meta").after(list);
    }
    const li = document.createElement("li");
    li.className = "badge";
    li.textContent = text;
    list.appendChild(li);
  }

  async function act(button) {
    const card = button.closest(".card");
    const action = button.dataset.action;
    if (button.getAttribute("aria-disabled") === "true") return;
    const payload = { action };
    if (action === "rate") payload.rating = Number(button.dataset.rating);
    if (!token()) { askToken(() => act(button)); return; }
    card.setAttribute("aria-busy", "true");
    status(card, "Saving...", false);
    try {
      const done = await send(card, payload);
      if (action === "not_interested") {
        await replace(card);
        return;
      }
      if (action === "watchlist") {
        addBadge(card, "On your watchlist");
        button.textContent = "On your Plex watchlist"; // keeps focus, unlike removing it
        button.setAttribute("aria-label", "On your Plex watchlist: " + card.querySelector("h2").textContent.trim());
        button.setAttribute("aria-disabled", "true");
        status(card, done.message, false);
        return;
      }
      card.querySelectorAll(".star").forEach((s) => {
        const on = Number(s.dataset.rating) <= payload.rating;
        s.classList.toggle("on", on);
        s.setAttribute("aria-pressed", Number(s.dataset.rating) === payload.rating ? "true" : "false");
      });
      status(card, done.message, false);
    } catch (err) {
      status(card, "Could not save: " + err.message, true);
      if (!token()) askToken(null);
    } finally {
      card.removeAttribute("aria-busy");
    }
  }

  grid.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (button) act(button);
  });

  // A poster that fails to load becomes a plain title block: the card stays whole.
  grid.addEventListener("error", (ev) => {
    const img = ev.target;
    if (img.tagName === "IMG" && !img.dataset.failed) {
      img.dataset.failed = "1";
      img.classList.add("failed");
    }
  }, true);
})();
