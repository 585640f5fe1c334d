// Router: hash routes → page modules. Each page's render(main, params) may return a cleanup function.
import { initAuth, onKeyChange } from "./api.js";
import { h, trapFocus } from "./ui.js";
import { subscriptions } from "./ws.js";
import * as schedulesPage from "./views/schedules.js";
import * as schedulePage from "./views/schedule.js";
import * as formPage from "./views/form.js";
import * as executionsPage from "./views/executions.js";
import * as calendarsPage from "./views/calendars.js";

const routes = [
  [/^\/?$/, "schedules", () => schedulesPage.render],
  [/^\/new$/, "new", () => formPage.render],
  [/^\/schedules\/([0-9a-f-]{36})$/i, "schedules", () => schedulePage.render],
  [/^\/schedules\/([0-9a-f-]{36})\/edit$/i, "schedules", () => formPage.render],
  [/^\/executions$/, "executions", () => executionsPage.render],
  [/^\/calendars$/, "calendars", () => calendarsPage.render],
];

let cleanup = null;
let firstRender = true;

async function route() {
  const main = document.getElementById("main");
  const path = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
  if (cleanup) { try { cleanup(); } catch (e) { console.error(e); } cleanup = null; }
  main.replaceChildren();
  let matched = false;
  for (const [pattern, nav, page] of routes) {
    const m = pattern.exec(path);
    if (!m) continue;
    matched = true;
    document.querySelectorAll("[data-nav]").forEach((a) => {
      if (a.dataset.nav === nav) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    });
    try {
      cleanup = (await page()(main, m.slice(1), path)) || null;
    } catch (error) {
      console.error(error);
      main.replaceChildren(h("div", { class: "banner", role: "alert" }, `Could not load this page: ${error.message}`));
    }
    break;
  }
  if (!matched) {
    main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, "No page at this address. ", h("a", { href: "#/" }, "Back to the schedules")));
  }
  if (!firstRender) main.focus({ preventScroll: false });
  firstRender = false;
}

initAuth();
trapFocus(document.getElementById("confirm-dialog"));
trapFocus(document.getElementById("backfill-dialog"));
onKeyChange(() => subscriptions.restart());
window.addEventListener("hashchange", route);
route();
