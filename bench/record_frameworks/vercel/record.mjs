// One run of a Vercel AI SDK agent against the fake OpenAI server, traced with the SDK's
// own telemetry (ai.* attributes) through the OTel Node SDK and OTLP/HTTP exporter.
// Called by recorders.py (record_vercel_ai) once per planned run:
//   node record.mjs <mode> <number> <streamed 0|1>
// Env: FAKE_BASE_URL, OTLP_ENDPOINT, TURN_LIMIT, CLIENT_TIMEOUT_MS, MODEL, PROMPT.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, streamText, tool } from "ai";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { readFile } from "node:fs/promises";
import { z } from "zod";

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "vercel_ai-agent" }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: process.env.OTLP_ENDPOINT }))],
});
provider.register();

const [, , mode, number, streamed] = process.argv;
const openai = createOpenAI({ baseURL: process.env.FAKE_BASE_URL, apiKey: "sk-fake-recording-0000" });

const readFileTool = tool({
  description: "Read a text file and return its contents.",
  inputSchema: z.object({ path: z.string() }),
  execute: async ({ path }) => {
    if (path.includes("missing")) {
      await readFile(path); // throws ENOENT: no such file or directory, open '<path>'
    }
    return `contents of ${path}: all good`;
  },
});

const options = {
  model: openai.chat(process.env.MODEL),
  system: "Answer with what the file says.",
  prompt: process.env.PROMPT,
  tools: { read_file: readFileTool },
  stopWhen: stepCountIs(Number(process.env.TURN_LIMIT)),
  maxRetries: 0,
  abortSignal: AbortSignal.timeout(Number(process.env.CLIENT_TIMEOUT_MS)),
  experimental_telemetry: { isEnabled: true, functionId: "file_agent" },
};

let code = 0;
try {
  if (streamed === "1") {
    const result = streamText({ ...options, onError: () => {} });
    for await (const part of result.fullStream) {
      if (part.type === "error") throw part.error;
      if (part.type === "abort") throw new Error("The stream was aborted (timeout)");
    }
  } else {
    await generateText(options);
  }
} catch (error) {
  console.log(`${error?.name ?? "Error"}: ${String(error?.message ?? error).slice(0, 200)}`);
  code = 3;
}
await provider.forceFlush();
await provider.shutdown();
process.exit(code);
