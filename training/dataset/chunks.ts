/**
 * Chunk lookup by id, for rebuilding an answer's prompt from the chunk ids its `AnswerRecord`
 * keeps (`result.retrievedChunkIds`). The `KnowledgeStore` seam has no get-by-id call yet, so the
 * SQLite store's file is read directly (read-only; its `chunks` and `articles` tables, schema
 * version 1 of `core/knowledge-store/sqlite.ts`).
 */
import type Database from 'better-sqlite3';
import { openSqliteDatabase } from '../../core/sqlite.ts';
import type { StoredChunk } from '../../core/types.ts';

/** Resolves chunk ids to chunks; ids that no longer exist (re-synced, deleted) are absent from the map. */
export interface ChunkLookup {
  get(ids: string[]): Promise<Map<string, StoredChunk>>;
  close(): Promise<void>;
}

interface Row {
  id: string;
  source: string;
  article_id: string;
  idx: number;
  heading_path: string;
  text: string;
  token_count: number;
  span_start: number;
  span_end: number;
  title: string;
  url: string | null;
  source_path: string;
  tags: string;
  access_groups: string;
  locale: string;
  updated_at: string;
}

/**
 * A lookup over the knowledge store's SQLite file (`DATA_DIR/supportbot.sqlite`).
 * @throws SupportbotError `store-unopenable` when the file cannot be opened.
 */
export function sqliteChunkLookup(file: string): ChunkLookup {
  const db: Database.Database = openSqliteDatabase(file);
  // Prepared on first use: a state-only file (no knowledge tables yet) can still serve answers
  // that retrieved nothing.
  let stmt: Database.Statement | null = null;
  const sql = `
    SELECT c.id, c.source, c.article_id, c.idx, c.heading_path, c.text, c.token_count, c.span_start,
           c.span_end, a.title, a.url, a.source_path, a.tags, a.access_groups, a.locale, a.updated_at
    FROM chunks c JOIN articles a ON a.source = c.source AND a.id = c.article_id
    WHERE c.id IN (SELECT value FROM json_each(?))`;
  return {
    async get(ids) {
      const out = new Map<string, StoredChunk>();
      if (ids.length === 0) return out;
      stmt ??= db.prepare(sql);
      for (const r of stmt.all(JSON.stringify(ids)) as Row[]) {
        out.set(r.id, {
          id: r.id,
          articleId: r.article_id,
          source: r.source,
          index: r.idx,
          headingPath: JSON.parse(r.heading_path) as string[],
          text: r.text,
          tokenCount: r.token_count,
          span: { start: r.span_start, end: r.span_end },
          title: r.title,
          url: r.url,
          sourcePath: r.source_path,
          tags: JSON.parse(r.tags) as string[],
          accessGroups: JSON.parse(r.access_groups) as string[],
          locale: r.locale,
          updatedAt: r.updated_at,
        });
      }
      return out;
    },
    async close() {
      db.close();
    },
  };
}
