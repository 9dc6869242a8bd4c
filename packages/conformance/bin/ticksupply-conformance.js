#!/usr/bin/env node
// The command itself is compiled to dist/cli/main.js by `tsc -b`. This committed file is what
// package.json's "bin" names because npm links (and marks executable) a bin only if the file
// exists at install time, and dist/ does not exist until the first build.
import '../dist/cli/main.js'
