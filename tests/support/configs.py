"""Config texts shared by tests."""

# The gateway core issue's minimal config, verbatim (with the ledger path as a format slot).
MINIMAL = """
database: sqlite:///{db}
providers:
  - name: bench
    kind: openai
    base_url: http://127.0.0.1:9000/v1
    api_key: ${{BENCH_KEY}}
models:
  - id: bench/echo
    author: bench
    endpoints:
      - provider: bench
        model: echo
        pricing: {{prompt: 1.0, completion: 2.0}}
"""
