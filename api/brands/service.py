"""Creating and reading brands and their settlement policy."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.brands.models import Brand
from api.errors import Conflict, ValidationFailed


def check_policy(*, base_amount: Decimal, floor_amount: Decimal, max_installments: int) -> None:
    if floor_amount <= 0 or base_amount <= 0:
        raise ValidationFailed("Os valores da política devem ser positivos.")
    if floor_amount > base_amount:
        raise ValidationFailed("O valor mínimo não pode ser maior que o valor base.")
    if max_installments < 1:
        raise ValidationFailed("O número máximo de parcelas deve ser pelo menos 1.")


async def get_brand_by_name(session: AsyncSession, *, name: str) -> Brand | None:
    return await session.scalar(sa.select(Brand).where(sa.func.lower(Brand.name) == name.lower()))


async def create_brand(
    session: AsyncSession,
    *,
    name: str,
    base_amount: Decimal,
    floor_amount: Decimal,
    max_installments: int,
    legal_name: str | None = None,
    payment_instructions: str = "",
    pix_key: str | None = None,
    payee_name: str | None = None,
    payee_city: str | None = None,
    min_installment_amount: Decimal = Decimal("100.00"),
    response_days: int = 10,
) -> Brand:
    check_policy(
        base_amount=base_amount, floor_amount=floor_amount, max_installments=max_installments
    )
    if await get_brand_by_name(session, name=name) is not None:
        raise Conflict(f"A marca {name!r} já existe.")
    brand = Brand(
        name=name.strip(),
        legal_name=legal_name,
        base_amount=base_amount,
        floor_amount=floor_amount,
        max_installments=max_installments,
        min_installment_amount=min_installment_amount,
        response_days=response_days,
        payment_instructions=payment_instructions,
        pix_key=pix_key,
        payee_name=payee_name,
        payee_city=payee_city,
    )
    session.add(brand)
    await session.flush()
    return brand
