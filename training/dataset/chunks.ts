/**
 * Chunk lookup by id, for rebuilding an answer's prompt from the chunk ids its `AnswerRecord`
 * keeps (`result.retrievedChunkIds`). It asks the runtime's knowledge store
 * (`KnowledgeStore.getChunks`), so the dataset sees the same chunks whichever store serves answers
 * (SQLite or Weaviate).
 */
import { SupportbotError } from '../../core/errors.ts';
import { SqliteKnowledgeStore } from '../../core/knowledge-store/sqlite.ts';
import type { KnowledgeStore } from '../../core/knowledge-store.ts';
import type { StoredChunk } from '../../core/types.ts';

/** Resolves chunk ids to chunks; ids that no longer exist (re-synced, deleted) are absent from the map. */
export interface ChunkLookup {
  get(ids: string[]): Promise<Map<string, StoredChunk>>;
  close(): Promise<void>;
}

/**
 * A lookup over a knowledge store. The store stays the caller's: `close()` does not close it.
 * @throws SupportbotError `store-unsupported` when the store has no `getChunks`.
 */
export function knowledgeStoreChunkLookup(store: KnowledgeStore): ChunkLookup {
  if (!store.getChunks) {
    throw new SupportbotError(
      'store-unsupported',
      `knowledge store ${store.id} cannot look chunks up by id, so rated answers cannot become training examples`,
    );
  }
  const getChunks = store.getChunks.bind(store);
  return {
    async get(ids) {
      const out = new Map<string, StoredChunk>();
      if (ids.length === 0) return out;
      for (const chunk of await getChunks(ids)) out.set(chunk.id, chunk);
      return out;
    },
    async close() {},
  };
}

/**
 * A lookup over an SQLite knowledge store file (`DATA_DIR/supportbot.sqlite`), opened here and
 * closed by `close()`. Only right when that file is the knowledge store in use: with
 * `KNOWLEDGE_STORE=weaviate` it holds no chunks, so use `knowledgeStoreChunkLookup(rt.knowledge)`.
 * Opening migrates the file like `SqliteKnowledgeStore.open` (a state-only file gains the empty
 * knowledge tables).
 * For a SQLite file opened on its own (tests, offline tools); the runtime uses its own store.
 * @throws SupportbotError `store-unopenable`, `store-too-new`.
 */
export function sqliteChunkLookup(file: string): ChunkLookup {
  const store = SqliteKnowledgeStore.open(file);
  const lookup = knowledgeStoreChunkLookup(store);
  return {
    get: (ids) => lookup.get(ids),
    close: () => store.close(),
  };
}
