"""Creating and reading brands and their settlement policy."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.brands.models import Brand
from api.errors import Conflict, ValidationFailed
from api.identifiers.money import format_brl


def check_policy(
    *,
    base_amount: Decimal,
    floor_amount: Decimal | None,
    max_installments: int,
    max_discount_percent: Decimal | None = None,
    min_installment_amount: Decimal = Decimal("100.00"),
) -> None:
    """Validate a settlement policy (the model is described in api.negotiation.policy)."""
    if base_amount <= 0 or (floor_amount is not None and floor_amount <= 0):
        raise ValidationFailed("Os valores da política devem ser positivos.")
    if floor_amount is not None and floor_amount > base_amount:
        raise ValidationFailed("O valor mínimo não pode ser maior que o valor base.")
    if max_discount_percent is not None and not 0 <= max_discount_percent <= 100:
        raise ValidationFailed("O desconto máximo deve estar entre 0% e 100%.")
    if max_discount_percent == 100 and floor_amount is None:
        raise ValidationFailed("Desconto máximo de 100% exige um valor mínimo (--floor).")
    if max_installments < 1:
        raise ValidationFailed("O número máximo de parcelas deve ser pelo menos 1.")
    if min_installment_amount < 0:
        raise ValidationFailed("O valor mínimo da parcela não pode ser negativo.")


def describe_policy(brand: Brand) -> str:
    """One line an operator can check: what the bot may accept alone for this brand."""
    bounds = []
    if brand.max_discount_percent is not None:
        bounds.append(
            f"desconto de até {brand.max_discount_percent.normalize():f}% do valor do caso"
        )
    if brand.floor_amount is not None:
        bounds.append(f"nunca abaixo de {format_brl(brand.floor_amount)}")
    discount = " e ".join(bounds) if bounds else "sem desconto"
    return (
        f"valor padrão {format_brl(brand.base_amount)} (casos sem valor); {discount}; "
        f"até {brand.max_installments}x, parcela mínima {format_brl(brand.min_installment_amount)}"
    )


async def get_brand_by_name(session: AsyncSession, *, name: str) -> Brand | None:
    return await session.scalar(sa.select(Brand).where(sa.func.lower(Brand.name) == name.lower()))


async def create_brand(
    session: AsyncSession,
    *,
    name: str,
    base_amount: Decimal,
    floor_amount: Decimal | None,
    max_installments: int,
    max_discount_percent: Decimal | None = None,
    legal_name: str | None = None,
    payment_instructions: str = "",
    pix_key: str | None = None,
    payee_name: str | None = None,
    payee_city: str | None = None,
    min_installment_amount: Decimal = Decimal("100.00"),
    response_days: int = 10,
) -> Brand:
    check_policy(
        base_amount=base_amount,
        floor_amount=floor_amount,
        max_installments=max_installments,
        max_discount_percent=max_discount_percent,
        min_installment_amount=min_installment_amount,
    )
    if await get_brand_by_name(session, name=name) is not None:
        raise Conflict(f"A marca {name!r} já existe.")
    brand = Brand(
        name=name.strip(),
        legal_name=legal_name,
        base_amount=base_amount,
        floor_amount=floor_amount,
        max_discount_percent=max_discount_percent,
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
