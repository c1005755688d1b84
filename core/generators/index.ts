import { AdapterRegistry } from '../adapters.ts';
import type { Config } from '../config.ts';
import type { Generator } from '../generator.ts';

/**
 * Builds the generator `llm.backend` names, with the adapter map as a shared registry (so a
 * later `registerAdapter`/promotion is seen on the next request). `extractive` returns null:
 * `answer()` then uses its built-in extractive generator. The llama-cpp module (and its native
 * binding) is imported only when that backend is configured.
 * @throws GeneratorError `llm_unavailable` when the GGUF model cannot be loaded.
 */
export async function createGenerator(config: Pick<Config, 'llm'>): Promise<Generator | null> {
  const llm = config.llm;
  const adapters = new AdapterRegistry(llm.adapters.map);
  const common = {
    adapters,
    defaultAdapter: llm.adapters.default,
    contextSize: llm.contextSize,
    maxTokens: llm.maxTokens,
    timeoutMs: llm.timeoutSeconds * 1000,
    tone: llm.tone,
  };
  switch (llm.backend) {
    case 'extractive':
      return null;
    case 'llama-cpp': {
      const { LlamaCppGenerator } = await import('./llama-cpp.ts');
      return LlamaCppGenerator.load({ ...common, modelPath: llm.modelPath as string, threads: llm.threads });
    }
    case 'openai': {
      const { OpenAIGenerator } = await import('./openai.ts');
      return new OpenAIGenerator({
        ...common,
        baseUrl: llm.baseUrl as string,
        apiKey: llm.apiKey,
        model: llm.model as string,
      });
    }
  }
}
