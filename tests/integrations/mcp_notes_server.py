"""A local MCP server (stdio) with one tool, for CrewAI's MCP support in the integration tests (offline)."""

from mcp.server.fastmcp import FastMCP

server = FastMCP("notes")


@server.tool()
def lookup(query: str) -> str:
    """Look a query up in the team's notes."""
    return f"two notes about {query}"


if __name__ == "__main__":
    server.run()
