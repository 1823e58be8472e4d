// Parse .eml files with mailparser (a second, independent MIME implementation) and
// print, as one JSON object keyed by path, what a mail client would show of each:
//   node parse-eml.js a.eml b.eml ...
// List-Id's phrase is decoded with libmime, the decoder mailparser itself uses
// (mailparser leaves that one header's encoded-words as they are).
"use strict";
const fs = require("fs");
const { simpleParser } = require("mailparser");
const libmime = require("libmime");

function addresses(field) {
  if (!field) return null;
  const list = Array.isArray(field) ? field : [field];
  return list.flatMap((f) => f.value).map((a) => ({ name: a.name, address: a.address }));
}

async function parse(path) {
  const mail = await simpleParser(fs.readFileSync(path));
  const list = mail.headers.get("list");
  const listId = list && list.id ? list.id : null;
  return {
    from: addresses(mail.from),
    to: addresses(mail.to),
    replyTo: addresses(mail.replyTo),
    subject: mail.subject === undefined ? null : mail.subject,
    listId: listId ? { name: libmime.decodeWords(listId.name || ""), id: listId.id } : null,
    text: mail.text === undefined ? null : mail.text,
  };
}

(async () => {
  const out = {};
  for (const path of process.argv.slice(2)) out[path] = await parse(path);
  process.stdout.write(JSON.stringify(out));
})().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
