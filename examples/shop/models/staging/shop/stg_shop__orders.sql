select
    id as order_id,
    customer_id,
    status,
    coupon_code,
    total,
    placed_at
from {{ source('shop', 'orders') }}
