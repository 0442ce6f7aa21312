"""A client generated from the service's own OpenAPI document works: openapi-python-client
(pinned in requirements-dev.txt) writes it from the document a real server gives, and
its typed calls submit, read, list and cancel orders on that server. The generator reads
the document from a file; nothing leaves the machine."""

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.uvicorn_server import Server, running_server

TOKEN = "generated-client-token-0123456789"
PACKAGE = "execution_client"


def generate_client(document: bytes, into: Path) -> None:
    """The client package `PACKAGE`, written into `into`; any warning the generator has
    about the document (a schema it cannot turn into a class) fails it."""
    (into / "openapi.json").write_bytes(document)
    # No post hooks: the generator would otherwise run ruff over the client it wrote.
    (into / "config.json").write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    command = [
        *(sys.executable, "-m", "openapi_python_client", "generate"),
        *("--path", str(into / "openapi.json"), "--config", str(into / "config.json")),
        *("--output-path", str(into / PACKAGE), "--meta", "none", "--fail-on-warning"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, ModuleType]]:
    """A server with a token, and the client package generated from its document."""
    tmp_path = tmp_path_factory.mktemp("generated-client")
    with running_server(tmp_path, {"EXECUTION_API_TOKEN": TOKEN}) as server:
        status, _, document = server.fetch("GET", "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        generate_client(document, tmp_path)
        sys.path.insert(0, str(tmp_path))
        try:
            yield server, importlib.import_module(PACKAGE)
        finally:
            sys.path.remove(str(tmp_path))
            for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
                del sys.modules[name]


def part(package: ModuleType, name: str) -> Any:
    """A module of the generated package: `api.orders.get_order` is what
    `from execution_client.api.orders import get_order` imports."""
    return importlib.import_module(f"{package.__name__}.{name}")


def test_a_generated_client_submits_reads_lists_and_cancels_an_order(generated: tuple[Server, ModuleType]) -> None:
    server, package = generated
    models = part(package, "models")
    submit_order_intent, get_order, list_orders, cancel_order = (
        part(package, f"api.orders.{name}")
        for name in ("submit_order_intent", "get_order", "list_orders", "cancel_order")
    )
    client = package.AuthenticatedClient(base_url=server.base_url, token=TOKEN, raise_on_unexpected_status=True)
    intent = models.OrderIntent(
        idempotency_key="generated-1",
        exchange=models.OrderIntentExchange("binance"),
        symbol=models.OrderIntentSymbol("BTC/USDT"),
        side=models.Side.BUY,
        qty=0.5,
        type_=models.OrderType.LIMIT,
        limit_price=100.0,
        time_in_force=models.TimeInForce.GTC,
    )

    with client:
        submitted = submit_order_intent.sync_detailed(client=client, body=intent)
        assert submitted.status_code == 201, submitted.content
        created = submitted.parsed
        assert isinstance(created, models.OrderCreated)
        assert (created.status, created.qty, created.filled_qty) == ("NEW", 0.5, 0.0)

        order = get_order.sync(order_id=created.order_id, client=client)
        assert isinstance(order, models.OrderOut)
        assert (order.status, order.type_, order.limit_price) == (models.OrderStatus.NEW, models.OrderType.LIMIT, 100.0)
        assert order.idempotency_key == "generated-1"

        page = list_orders.sync(client=client, idempotency_key="generated-1")
        assert isinstance(page, models.OrderPage)
        assert [item.order_id for item in page.items] == [created.order_id]
        assert page.next_cursor is None

        canceled = cancel_order.sync(order_id=created.order_id, client=client)
        assert isinstance(canceled, models.OrderOut)
        assert canceled.status == models.OrderStatus.CANCELED

        # The refusals come back typed too: the cancel's 409 names the order's status,
        # a reused key's 409 names the order.
        again = cancel_order.sync_detailed(order_id=created.order_id, client=client)
        assert again.status_code == 409
        assert isinstance(again.parsed, models.NotCancelableBody)
        assert again.parsed.status == models.OrderStatus.CANCELED
        duplicate = submit_order_intent.sync_detailed(client=client, body=intent)
        assert duplicate.status_code == 409
        assert isinstance(duplicate.parsed, models.DuplicateBody)
        assert duplicate.parsed.order_id == created.order_id


def test_a_generated_client_sends_a_market_order_and_the_quote_that_fills_it(
    generated: tuple[Server, ModuleType],
) -> None:
    server, package = generated
    models = part(package, "models")
    submit_order_intent, get_order, list_order_fills = (
        part(package, f"api.orders.{name}") for name in ("submit_order_intent", "get_order", "list_order_fills")
    )
    post_quote = part(package, "api.market_data.post_quote")
    client = package.AuthenticatedClient(base_url=server.base_url, token=TOKEN, raise_on_unexpected_status=True)
    intent = models.OrderIntent(
        idempotency_key="generated-2",
        exchange=models.OrderIntentExchange("coinbase"),
        symbol=models.OrderIntentSymbol("ETH/USDT"),
        side=models.Side.SELL,
        qty=2.0,
        type_=models.OrderType.MARKET,  # and no limit_price: the client leaves it out
    )
    quote = models.QuoteIn(
        exchange=models.QuoteInExchange("coinbase"), symbol=models.QuoteInSymbol("ETH/USDT"), bid=3000.0, ask=3001.0
    )

    with client:
        created = submit_order_intent.sync(client=client, body=intent)
        assert isinstance(created, models.OrderCreated)
        fills = post_quote.sync(client=client, body=quote)
        assert isinstance(fills, models.FillList)
        assert [(fill.order_id, fill.qty, fill.price) for fill in fills.items] == [(created.order_id, 2.0, 3000.0)]

        filled = get_order.sync(order_id=created.order_id, client=client)
        assert (filled.status, filled.filled_qty, filled.limit_price) == (models.OrderStatus.FILLED, 2.0, None)
        of_order = list_order_fills.sync(order_id=created.order_id, client=client)
        assert [fill.fill_id for fill in of_order.items] == [fills.items[0].fill_id]
        assert of_order.items[0].liquidity == models.Liquidity.TAKER
