-- Orders with their customer and payment: what the revenue dashboard reads.
select
    o.order_id,
    o.customer_id,
    c.email,
    o.total,
    p.amount as paid_amount,
    o.placed_at
from {{ ref('stg_shop__orders') }} o
join {{ ref('stg_shop__customers') }} c using (customer_id)
left join {{ ref('stg_payments__payments') }} p using (order_id)
