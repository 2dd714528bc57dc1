// Reads a solc standard-JSON input on stdin, compiles it with npm's solcjs (offline), and
// writes {"solc_version": ..., "output": <standard-JSON output>} on stdout.
// Called by scripts/compile_contracts.py; run from the repo root so require('solc') resolves.
const solc = require('solc');

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const output = JSON.parse(solc.compile(input));
  process.stdout.write(JSON.stringify({ solc_version: solc.version(), output }));
});
