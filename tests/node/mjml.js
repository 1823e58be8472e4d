// The reference MJML compiler, for tests that compare mjml-python with it:
// MJML on stdin, HTML on stdout.   node tests/node/mjml.js < email.mjml
const mjml2html = require("mjml");

let source = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (source += chunk));
process.stdin.on("end", async () => {
  try {
    const result = await mjml2html(source, { validationLevel: "soft" });
    process.stdout.write(result.html);
  } catch (err) {
    process.stderr.write(String((err && err.message) || err) + "\n");
    process.exit(1);
  }
});
