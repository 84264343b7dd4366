// The web chat page in a real browser: type a message, see streamed text
// appear, press stop, check the server cancelled, send a follow-up.
//
// Usage: node chat.test.mjs [path/to/kiln]
// Needs KILN_MODELS (the folder scripts/fetch-models.sh fills) for the real
// SmolLM2 model: it streams slowly enough to press stop mid-reply.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const kiln = process.argv[2] || path.join(root, "target/debug/kiln");
const models = process.env.KILN_MODELS || path.join(process.env.HOME, ".cache/kiln-models");
const model = path.join(models, "SmolLM2-135M-Instruct.Q4_1.gguf");
const browserPath = process.env.CHROMIUM || "/usr/bin/chromium";

function check(cond, what) {
  if (!cond) throw new Error("FAILED: " + what);
  console.log("ok - " + what);
}

async function startServer() {
  if (!existsSync(model)) throw new Error(`missing ${model}: run scripts/fetch-models.sh`);
  const proc = spawn(kiln, ["serve", "--model", `smollm2=${model}`, "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const base = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    proc.on("exit", (code) => reject(new Error("kiln serve exited with " + code)));
  });
  return { proc, base };
}

async function metric(base, name) {
  const text = await (await fetch(base + "/metrics")).text();
  const line = text.split("\n").find((l) => l.startsWith(name + "{"));
  return line ? parseFloat(line.split(" ").pop()) : NaN;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const { proc, base } = await startServer();
  const browser = await chromium.launch({ executablePath: browserPath, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    const foreign = [];
    page.on("request", (req) => {
      if (!req.url().startsWith(base)) foreign.push(req.url());
    });
    await page.goto(base + "/");
    await page.waitForSelector("#model option[value=smollm2]", { state: "attached" });
    check(true, "page loads and lists the served model");

    const md = await page.evaluate(() => renderMarkdown("# T\n**b** and `c`\n- x\n```js\n<y>\n```"));
    check(md.includes("<strong>b</strong>") && md.includes("<code>c</code>") && md.includes("<li>x</li>")
      && md.includes("&lt;y&gt;") && !md.includes("<y>"), "markdown and code render, HTML is escaped");

    await page.fill("#max_tokens", "400");
    await page.fill("#prompt", "Tell me a long story about a dragon who learns to bake bread.");
    await page.click("#send");
    const bubble = page.locator(".msg.assistant").last();
    // Streamed: the reply grows over time while the request runs.
    await page.waitForFunction(() => (document.querySelector(".msg.assistant").dataset.text || "").length > 0);
    const first = (await bubble.getAttribute("data-text")).length;
    await page.waitForFunction((n) => document.querySelector(".msg.assistant").dataset.text.length > n + 20, first);
    check(await page.isEnabled("#stop"), "text streams in while the stop button is live");
    await page.click("#stop");
    await page.waitForFunction(() => document.querySelector(".msg.assistant").dataset.state === "done");
    const stopped = (await bubble.getAttribute("data-text")).length;
    await sleep(1000);
    const later = (await bubble.getAttribute("data-text")).length;
    check(later === stopped && stopped > first, `stop freezes the reply (${stopped} chars)`);
    check((await bubble.locator(".meta").textContent()) === "stopped", "reply marked stopped");
    let cancelled = 0;
    for (let i = 0; i < 50 && cancelled < 1; i++) {
      cancelled = await metric(base, "kiln_requests_cancelled_total");
      await sleep(100);
    }
    check(cancelled === 1, "the server cancelled the request");
    check(await page.isEnabled("#send"), "send is enabled again");

    await page.fill("#max_tokens", "12");
    await page.fill("#prompt", "Thanks! And in one word?");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelectorAll(".msg.assistant").length === 2
      && document.querySelectorAll(".msg.assistant")[1].dataset.state === "done");
    const second = await page.locator(".msg.assistant").nth(1).getAttribute("data-text");
    check(second.length > 0, `follow-up answered: ${JSON.stringify(second)}`);
    check((await page.locator(".msg.user").count()) === 2, "conversation kept in the page");
    check(foreign.length === 0, "no request leaves the server (works offline)");
  } finally {
    await browser.close();
    proc.kill("SIGTERM");
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
