// One tus upload with tus-js-client in Node.js, for bench/api.py: the library the producers' page
// runs in the browser. Each PATCH body is a stream read from the file (never the whole chunk in
// memory); one PATCH for the whole file (tus-js-client's default) unless --chunk-bytes. No
// retries, so a failure shows.
//
//   STORYMEDIA_TOKEN=... node bench/tus_client.mjs ENDPOINT PATH METADATA_JSON
//                        [--chunk-bytes N] [--read-bytes N]
//
// --read-bytes: the size of each read from the file. tus-js-client's own Node source reads with
// Node's stream default, 64 KiB: each read is a trip through the stream machinery and a socket
// write, which made this client spend ~1.2 CPU-seconds per GB against ~0.8 with 1 MiB reads (a
// browser reads a File natively, outside JavaScript). Given, the same source is built here with
// that read size (tus-js-client's `fileReader` option); absent, tus-js-client's own is used.
//
// Prints one JSON line: {"url", "requests": [[method, seconds], ...], "cpu_s"}, where cpu_s is
// this process's user + system CPU time. Exits 1 with the error on stderr.
import { createReadStream, statSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Upload } from 'tus-js-client'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'chunk-bytes': { type: 'string' }, 'read-bytes': { type: 'string' } },
})
const [endpoint, path, metadataJson] = positionals
const token = process.env.STORYMEDIA_TOKEN
if (!endpoint || !token || !path || !metadataJson) {
  process.stderr.write('usage: STORYMEDIA_TOKEN=... node bench/tus_client.mjs ENDPOINT PATH METADATA_JSON'
    + ' [--chunk-bytes N] [--read-bytes N]\n')
  process.exit(2)
}

// A file source as tus-js-client's Node one (lib/node/sources/FileSource.js), reading `readBytes`
// at a time.
function fileReader(readBytes) {
  return {
    openFile(input) {
      const size = statSync(input.path).size
      return Promise.resolve({
        size,
        slice(start, end) {
          const stop = Math.min(end, size)
          const stream = createReadStream(input.path, { start, end: stop - 1, highWaterMark: readBytes })
          stream.size = stop - start
          return Promise.resolve({ value: stream, done: stop >= size })
        },
        close() { input.destroy() },
      })
    },
  }
}

const requests = []
const started = new Map()
const options = {
  endpoint,
  headers: { Authorization: `Bearer ${token}` },
  metadata: JSON.parse(metadataJson),
  retryDelays: null,
  storeFingerprintForResuming: false,
  onBeforeRequest: (req) => { started.set(req, performance.now()) },
  onAfterResponse: (req) => {
    requests.push([req.getMethod(), (performance.now() - started.get(req)) / 1000])
  },
  onError: (error) => {
    process.stderr.write(`tus upload failed: ${error}\n`)
    process.exit(1)
  },
  onSuccess: () => {
    const cpu = process.cpuUsage()
    process.stdout.write(`${JSON.stringify({ url: upload.url, requests, cpu_s: (cpu.user + cpu.system) / 1e6 })}\n`)
  },
}
if (values['chunk-bytes']) options.chunkSize = Number(values['chunk-bytes'])
if (values['read-bytes']) options.fileReader = fileReader(Number(values['read-bytes']))

const upload = new Upload(createReadStream(path), options)
upload.start()
