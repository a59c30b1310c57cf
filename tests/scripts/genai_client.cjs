// A real GenAI client on Node.js for the --tls-probes tests: the `openai`
// npm package (tests/package.json) making the calls named on the command
// line against BASE_URL; the lab's CA comes in NODE_EXTRA_CA_CERTS. Prints
// one line per call: the call and "ok" or the error's name.
//
//   node genai_client.cjs BASE_URL chat|stream|embeddings [...]
const OpenAI = require('openai');

async function call(client, what) {
  const messages = [{ role: 'user', content: 'hi' }];
  if (what === 'chat') {
    const r = await client.chat.completions.create({ model: 'gpt-4o', messages });
    return r.choices[0].message.content === 'hi';
  }
  if (what === 'stream') {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
    }
    return text === 'hi';
  }
  if (what === 'embeddings') {
    const r = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hi' });
    return r.data.length === 1;
  }
  throw new Error(`unknown call ${what}`);
}

(async () => {
  const [baseURL, ...calls] = process.argv.slice(2);
  const client = new OpenAI({ baseURL, apiKey: 'test', maxRetries: 0, timeout: 30000 });
  for (const what of calls) {
    try {
      console.log(what, (await call(client, what)) ? 'ok' : 'wrong-answer');
    } catch (e) {
      console.log(what, e.constructor.name);
    }
  }
})();
