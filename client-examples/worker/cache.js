// A tiny cache shared by the players and the workers: one JSON file per key in a directory.
// (A real game would use Redis or its database; a directory keeps the example self-contained.)
'use strict';

const fs = require('fs');
const path = require('path');

function open(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const file = (key) => path.join(dir, `${encodeURIComponent(key)}.json`);
  return {
    get(key) {
      try {
        return JSON.parse(fs.readFileSync(file(key), 'utf8'));
      } catch {
        return undefined; // a miss
      }
    },
    put(key, value) {
      fs.writeFileSync(file(key), JSON.stringify(value));
    },
  };
}

module.exports = { open };
