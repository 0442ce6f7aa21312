"""Stopping background tasks: each is cancelled and has ended when the stop returns,
whether it was running, had ended already, or failed."""

import asyncio

from app.venues.tasks import cancel_and_wait


def test_every_task_is_cancelled_and_ended() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def fails() -> None:
        raise RuntimeError("gone")

    async def scenario() -> None:
        tasks = [asyncio.ensure_future(forever()), asyncio.ensure_future(fails())]
        await asyncio.sleep(0)  # the failing one has failed
        await cancel_and_wait(tasks)
        assert all(task.done() for task in tasks)
        assert tasks[0].cancelled()
        assert isinstance(tasks[1].exception(), RuntimeError)
        await cancel_and_wait([])

    asyncio.run(scenario())
