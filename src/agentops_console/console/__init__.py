"""The live operations console (`agentops console`): a Textual app over agent endpoints.

`store` holds fleet state and knows nothing of Textual, `connection` keeps one agent's
snapshot-then-stream feed alive, `actions` sends operator actions and audits them, and
`app` wires these to the views in `screens/` and `widgets/`.
"""
