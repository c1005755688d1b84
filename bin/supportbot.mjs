#!/usr/bin/env node
// The CLI is TypeScript run through tsx's loader, so `npx supportbot` works right after `npm ci`
// with no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../bot/cli/main.ts');
process.exitCode = await main(process.argv);
// Connections that retry in the background (a Slack Web API call at start-up, a Redis reconnect)
// must not keep a finished command alive: exit shortly after if the loop has not drained.
setTimeout(() => process.exit(), 2000).unref();
