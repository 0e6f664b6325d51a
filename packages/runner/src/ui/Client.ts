/**
 * The script of the run page, written as one self-contained function so it is type-checked here
 * and inlined into the page as its source text (`${main}`), with no bundler: it must not refer to
 * anything outside itself.
 *
 * Live (`config.live`): it follows `/api/runs/:id/events` (Server-Sent Events, resuming after the
 * events the served HTML already shows), recolours the DAG and the stage cards and moves progress
 * bars on each event, and after a stage starts or ends re-fetches the page to swap in the new
 * timeline and stage details — the page is never reloaded. In the report it only highlights the
 * stage chosen in the DAG.
 *
 * @since 0.1.0
 */

/** What the page tells its script. @category models */
export interface ClientConfig {
  readonly live: boolean
  readonly runId: string
  /** Events already shown in the HTML; the stream resumes after them. */
  readonly eventCount: number
  readonly eventsUrl: string
}

/** The page script. Runs in the browser; must stay self-contained. */
export function main(config: ClientConfig): void {
  const states = new Set(["pending", "running", "succeeded", "failed", "skipped", "interrupted", "planned"])
  const body = document.body
  const byStage = (id: string, selector: string): Array<Element> =>
    Array.from(document.querySelectorAll(selector)).filter((el) => el.getAttribute("data-stage") === id)

  const setState = (id: string, state: string) => {
    if (!states.has(state)) return
    for (const el of byStage(id, "svg.dag g.node, article.stage, svg.timeline g.row-stage")) el.setAttribute("data-state", state)
    for (const el of byStage(id, "article.stage")) {
      const badge = el.querySelector(".badge")
      if (badge !== null) {
        badge.textContent = state
        badge.setAttribute("data-state", state)
      }
    }
  }

  // A stage that finished from the results store or as the same key as an earlier one (StageCard.reuseBadge, Dag.reuseText).
  const setReuse = (id: string, cached: boolean, sameAs: string | undefined) => {
    if (!cached && sameAs === undefined) return
    const text = [cached ? "cached" : "", sameAs === undefined ? "" : `= ${sameAs}`].filter((t) => t !== "").join(" ")
    for (const node of byStage(id, "svg.dag g.node")) {
      const label = node.querySelector("text.reuse")
      if (label !== null) label.textContent = text
      if (cached) node.setAttribute("data-cached", "true")
    }
    for (const card of byStage(id, "article.stage")) {
      const reuse = card.querySelector(".reuse")
      if (reuse === null) continue
      reuse.textContent = ""
      if (cached) {
        const badge = document.createElement("span")
        badge.className = "badge"
        badge.setAttribute("data-reuse", "cached")
        badge.textContent = "cached"
        reuse.append(badge)
      }
      if (sameAs !== undefined) reuse.append(` same as ${sameAs}`)
    }
  }

  const setProgress = (id: string, done: number, total: number, text: string | undefined) => {
    const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0
    for (const node of byStage(id, "svg.dag g.node")) {
      const bar = node.querySelector("rect.bar")
      if (bar !== null) bar.setAttribute("width", String(Number(bar.getAttribute("data-width") ?? "0") * fraction))
    }
    for (const card of byStage(id, "article.stage")) {
      const box = card.querySelector(".progress")
      if (box === null) continue
      if (text !== undefined) box.removeAttribute("hidden")
      const fill = box.querySelector(".fill") as HTMLElement | null
      if (fill !== null) fill.style.width = `${(fraction * 100).toFixed(1)}%`
      const label = box.querySelector(".progress-text")
      if (label !== null && text !== undefined) label.textContent = text
    }
  }

  const select = () => {
    const id = decodeURIComponent(location.hash.replace(/^#stage-/, ""))
    for (const el of Array.from(document.querySelectorAll(".selected"))) el.classList.remove("selected")
    if (id !== "") for (const el of byStage(id, "svg.dag g.node, article.stage")) el.classList.add("selected")
  }
  window.addEventListener("hashchange", select)
  select()
  if (!config.live) return

  // Swap the parts of the page that events alone cannot update (timeline, details) from a fresh copy.
  let refreshTimer: ReturnType<typeof setTimeout> | undefined
  const refresh = () => {
    if (refreshTimer !== undefined) clearTimeout(refreshTimer)
    refreshTimer = setTimeout(() => {
      fetch(location.pathname, { headers: { accept: "text/html" } })
        .then((r) => (r.ok ? r.text() : Promise.reject(new Error(String(r.status)))))
        .then((html) => {
          const fresh = new DOMParser().parseFromString(html, "text/html")
          for (const id of ["timeline-section", "lm-section", "run-meta", "files-section"]) {
            const next = fresh.getElementById(id)
            const current = document.getElementById(id)
            if (next !== null && current !== null) current.replaceWith(document.importNode(next, true))
          }
          for (const card of Array.from(fresh.querySelectorAll("article.stage .dynamic"))) {
            const id = card.closest("article")?.getAttribute("data-stage")
            const current = id === null || id === undefined ? undefined : byStage(id, "article.stage")[0]?.querySelector(".dynamic")
            if (current !== undefined && current !== null) current.replaceWith(document.importNode(card, true))
          }
          body.setAttribute("data-refreshed", String(Number(body.getAttribute("data-refreshed") ?? "0") + 1))
        })
        .catch(() => undefined)
    }, 300)
  }

  // As the server prints them (Html.bytes): decimal units.
  const bytes = (n: number): string => {
    const units = ["B", "KB", "MB", "GB", "TB"]
    let v = n
    let u = 0
    while (Math.abs(v) >= 1000 && u < units.length - 1) (v /= 1000, u++)
    return `${u === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`
  }

  const apply = (event: { type: string; stage?: string; status?: string; cached?: boolean; sameAs?: string; done?: number; total?: number; unit?: string; detail?: string; bytes?: number; totalBytes?: number }) => {
    if (event.type === "stage-started" && event.stage !== undefined) {
      setState(event.stage, "running")
      refresh()
    } else if (event.type === "stage-progress" && event.stage !== undefined) {
      // One measure per bar, as the server draws it (cli/Progress.ts `amount`): bytes when reported.
      const inBytes = event.unit === "bytes" || (event.bytes !== undefined && (event.totalBytes ?? 0) > 0)
      const done = event.unit === "bytes" || !inBytes ? event.done ?? 0 : event.bytes ?? 0
      const total = event.unit === "bytes" || !inBytes ? event.total ?? 0 : event.totalBytes ?? 0
      const amount = inBytes ? `${bytes(done)}/${bytes(total)}` : `${done}/${total} ${event.unit ?? ""}`
      setProgress(event.stage, done, total, `${amount}${event.detail === undefined ? "" : ` — ${event.detail}`}`)
    } else if (event.type === "stage-finished" && event.stage !== undefined && event.status !== undefined) {
      setState(event.stage, event.status)
      setReuse(event.stage, event.cached === true, event.sameAs)
      if (event.status === "succeeded") setProgress(event.stage, 1, 1, undefined)
      refresh()
    } else if (event.type === "run-finished" && event.status !== undefined) {
      const badge = document.getElementById("run-status")
      if (badge !== null) {
        badge.textContent = event.status
        badge.setAttribute("data-status", event.status)
      }
      refresh()
    }
  }

  const stream = new EventSource(`${config.eventsUrl}?from=${config.eventCount}`)
  body.setAttribute("data-live", "connecting")
  stream.onopen = () => body.setAttribute("data-live", "open")
  stream.onmessage = (message: MessageEvent<string>) => {
    try {
      apply(JSON.parse(message.data))
    } catch {
      // A malformed event is skipped; the next refresh shows the truth from disk.
    }
    body.setAttribute("data-events", String(Number(body.getAttribute("data-events") ?? "0") + 1))
  }
  stream.addEventListener("end", () => {
    stream.close()
    body.setAttribute("data-live", "ended")
    const note = document.getElementById("live-note")
    if (note !== null) note.textContent = "run ended"
  })
}
