import { afterAll, beforeAll, describe } from 'vitest';
import { WeaviateKnowledgeStore } from '../core/knowledge-store/weaviate.ts';
import { describeKnowledgeStoreContract, describeVectorStoreContract } from './contract/knowledge-store.contract.ts';
import { type FakeWeaviate, startFakeWeaviate } from './fakes/weaviate/server.ts';

let fake: FakeWeaviate;
let tenants = 0;
beforeAll(async () => {
  fake = await startFakeWeaviate();
});
afterAll(async () => {
  await fake?.close();
});

// Every store gets a new tenant: an empty store, and tenants must not see each other's data.
const makeFakeStore = () =>
  WeaviateKnowledgeStore.connect({ url: fake.url, grpcUrl: fake.grpcUrl, tenant: `t${++tenants}` });

describe('against the local Weaviate-speaking fake', () => {
  describeKnowledgeStoreContract('WeaviateKnowledgeStore (fake)', makeFakeStore);
  describeVectorStoreContract('WeaviateKnowledgeStore (fake)', makeFakeStore);
});
